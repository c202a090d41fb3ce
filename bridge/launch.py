"""``pulse-mqtt-bridge``: ``python -m bridge.mqtt`` as an installed command."""

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from bridge.mqtt import main as run
    except ModuleNotFoundError as exc:
        # Installed without the mqtt extra: say which one brings paho-mqtt, not a traceback.
        print(f"pulse-mqtt-bridge: {exc}; install it with: pip install 'pulseboard[mqtt]'", file=sys.stderr)
        return 2
    return run(argv)
