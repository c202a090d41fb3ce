"""Coverage-guided fuzzing (atheris / libFuzzer) of ``parse_client_op``, the gateway's client-frame parser.

Any exception other than ``ProtocolError`` is a crash, and so is a ``ProtocolError`` without an
``ErrorCode``, an error ``ref`` that is not a valid id, or a parsed op that does not survive being
written back out and parsed again. Each input is tried as raw bytes, as text (invalid UTF-8 decoded to
lone surrogates), and as the seed of a structured frame built with ``FuzzedDataProvider``.

    python tests/fuzz/parser_atheris.py -runs=100000
    python tests/fuzz/parser_atheris.py -max_total_time=60 -artifact_prefix=/tmp/crash- /tmp/corpus

Without a corpus directory the fuzzer is seeded read-only from ``tests/fuzz/corpus`` (``-seed_inputs``),
and without ``-dict`` it uses ``tests/fuzz/frames.dict``. libFuzzer writes new inputs into the first
corpus directory it is given and crash files to ``-artifact_prefix`` (default: the current directory),
so point both at scratch paths, never at the repository's corpus.
"""

import json
import sys
from pathlib import Path
from typing import get_args

import atheris  # type: ignore[import-untyped]
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
DICTIONARY = HERE / "frames.dict"
# Run as a script, so the repository root is not on sys.path yet.
sys.path.insert(0, str(HERE.parents[1]))

with atheris.instrument_imports(include=["shared"]):
    from shared.channels import Namespace
    from shared.codes import ErrorCode
    from shared.messages import ClientOp, ProtocolError, parse_client_op

OP_TYPES: tuple[type[BaseModel], ...] = get_args(ClientOp)
OP_NAMES = [get_args(op_type.model_fields["op"].annotation)[0] for op_type in OP_TYPES]
FIELDS = ["op", "id", "channel", "token", "since", "history", "data", "to", "offset", "epoch", "values"]


class ContractBrokenError(AssertionError):
    """The parser broke its contract (an exception it raised itself is reported as is)."""


def _is_request_id(value: object) -> bool:
    return type(value) is int or (type(value) is str and len(value) <= 64)


def _check(frame: str | bytes) -> ClientOp | ProtocolError:
    """Parse ``frame``; raise ``ContractBrokenError`` if the outcome breaks the contract."""
    try:
        op = parse_client_op(frame)
    except ProtocolError as error:
        if not isinstance(error.code, ErrorCode) or not error.detail:
            raise ContractBrokenError(f"malformed ProtocolError {error.code!r} {error.detail!r}") from error
        if error.ref is not None and not _is_request_id(error.ref):
            raise ContractBrokenError(f"error ref {error.ref!r} is not a valid id") from error
        return error
    if not isinstance(op, OP_TYPES):
        raise ContractBrokenError(f"parsed to {type(op).__name__}, not a ClientOp")
    # NaN or Infinity inside `data` come back as null, so compare from the first re-encoding on.
    written = op.model_dump_json(exclude_none=True)
    try:
        again = parse_client_op(written)
    except ProtocolError as error:
        raise ContractBrokenError(
            f"{written!r}, written from a parsed op, is refused: {error.detail}"
        ) from error
    if again.model_dump_json(exclude_none=True) != written:
        raise ContractBrokenError(f"{written!r} does not parse back to itself")
    return op


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    """A JSON-ish value biased towards what the op fields accept, and just past it."""
    kind = fdp.ConsumeIntInRange(0, 11 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))
    if kind == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    if kind == 5:
        namespace = fdp.PickValueInList([*(ns.value for ns in Namespace), "", "Data"])
        return f"{namespace}:{fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 70))}"
    if kind == 6:
        return fdp.PickValueInList(OP_NAMES)
    if kind == 7:
        return "x" * fdp.ConsumeIntInRange(60, 70)
    if kind == 8:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 20))  # may hold lone surrogates
    if kind == 9:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return _object(fdp, depth + 1)


def _object(fdp: atheris.FuzzedDataProvider, depth: int) -> dict[str, object]:
    raw: dict[str, object] = {}
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        key = fdp.PickValueInList(FIELDS) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(8)
        raw[key] = _value(fdp, depth)
    return raw


def _structured(fdp: atheris.FuzzedDataProvider) -> str:
    raw = _object(fdp, 0)
    if fdp.ConsumeBool():
        raw["op"] = fdp.PickValueInList(OP_NAMES)
    return json.dumps(raw, ensure_ascii=fdp.ConsumeBool())


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name atheris's documentation gives it)
    _check(data)
    _check(data.decode("utf-8", errors="surrogateescape"))
    frame = _structured(atheris.FuzzedDataProvider(data))
    outcome = _check(frame)
    if isinstance(outcome, ProtocolError) and outcome.code != ErrorCode.BAD_JSON:
        # The id as JSON decodes it: an escaped surrogate pair becomes one character.
        ident = json.loads(frame).get("id")
        if outcome.ref != (ident if _is_request_id(ident) else None):
            raise ContractBrokenError(f"error ref {outcome.ref!r} for a frame whose id is {ident!r}")


def main(argv: list[str]) -> None:
    args = list(argv)
    if not any(not arg.startswith("-") for arg in args[1:]) and not any(
        arg.startswith("-seed_inputs=") for arg in args
    ):
        args.append("-seed_inputs=" + ",".join(str(path) for path in sorted(CORPUS.glob("*.json"))))
    if not any(arg.startswith("-dict=") for arg in args):
        args.append(f"-dict={DICTIONARY}")
    atheris.Setup(args, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
