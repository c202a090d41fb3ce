"""Where the Redis broker keeps things: the key and pub/sub channel names, for one Redis or a Cluster.

Per channel (both modes; ``{channel}`` is a hash tag, so on a Cluster all of a channel's keys, and its
pub/sub channel, live in one slot, which the publish script needs):

- ``pulse:{<channel>}:meta``         hash: ``top`` (latest offset), ``epoch``, and on a Cluster
  ``master`` (the replication id of the master that last set the epoch, see ``redis_publish.lua``)
- ``pulse:{<channel>}:stream``       stream: the retained publications, entry id ``<offset>-1``
- ``pulse:{<channel>}:idem:<key>``   string: an idempotency key's offsets, for five minutes
- ``pulse:{<channel>}:presence``     hash: client id -> who and on which process
- ``pulse:{<channel>}:live``         pub/sub channel of its publications and join/leave events
  (PUBLISH/SUBSCRIBE on one Redis; sharded SPUBLISH/SSUBSCRIBE in the channel's slot on a Cluster)

Shared, one Redis (``redis://``; the names every earlier version used, so processes of both can share
a Redis during a rolling upgrade):

- ``pulse:epoch``                    string: the epoch a new stream starts in (changes when Redis lost it)
- ``pulse:channels:<namespace>``     sorted set: live channels by last publish time
- ``pulse:direct:<process>``         pub/sub channel of direct messages to one gateway process

Shared, Cluster (``redis+cluster://``): nothing global, so no key is one node's hot spot:

- ``pulse:{<tag of slot s>}:epoch``  hash ``epoch``, ``master``: the epoch new streams of slot ``s``
  start in, one per slot, so the script reads it in the channel's own slot; ``<tag of slot s>`` is the
  shortest decimal string that hashes to ``s`` (``slot_tag``)
- ``pulse:channels:<namespace>:{<tag>}`` sorted sets: the live channels in ``CHANNEL_BUCKETS``
  buckets (a channel's bucket: CRC-32 of its name), whose tags are slots spread evenly over the
  slot space, so over the masters; listing and the channel cap read every bucket, pipelined
- ``pulse:direct:{<process>}``       sharded pub/sub channel of one process's direct messages

Either mode: ``pulse:client:<id>`` (string: the process holding a connection, for direct messages)
and ``pulse:process:<id>`` (a process's liveness, for presence) are hashed on their whole name, so
spread over a Cluster's slots.
"""

import binascii
import functools
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from shared.channels import Namespace

CHANNEL_BUCKETS = 16


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For each of the 16384 slots, the shortest decimal string whose hash is that slot (a few hundred
    thousand CRC16s, once, only on a Cluster)."""
    tags: dict[int, str] = {}
    candidate = 0
    while len(tags) < REDIS_CLUSTER_HASH_SLOTS:
        text = str(candidate)
        tags.setdefault(key_slot(text.encode()), text)
        candidate += 1
    return tuple(tags[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS))


def slot_tag(slot: int) -> str:
    return _slot_tags()[slot]


def meta(channel: str) -> str:
    return f"pulse:{{{channel}}}:meta"


def stream(channel: str) -> str:
    return f"pulse:{{{channel}}}:stream"


def live(channel: str) -> str:
    return f"pulse:{{{channel}}}:live"


def presence(channel: str) -> str:
    return f"pulse:{{{channel}}}:presence"


def idempotency(channel: str, key: str) -> str:
    return f"pulse:{{{channel}}}:idem:{key}"


def channel_of_live(name: str) -> str:
    return name[len("pulse:{") : -len("}:live")]


def client(client_id: str) -> str:
    return f"pulse:client:{client_id}"


def process(process_id: str) -> str:
    return f"pulse:process:{process_id}"


@functools.cache
def _channel_sets(cluster: bool, namespace: Namespace) -> tuple[str, ...]:
    if not cluster:
        return (f"pulse:channels:{namespace}",)
    step = REDIS_CLUSTER_HASH_SLOTS // CHANNEL_BUCKETS
    return tuple(f"pulse:channels:{namespace}:{{{slot_tag(i * step)}}}" for i in range(CHANNEL_BUCKETS))


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The shared names, which differ between one Redis and a Cluster (see the module docstring)."""

    cluster: bool

    def epoch(self, channel: str) -> str:
        if not self.cluster:
            return "pulse:epoch"
        return f"pulse:{{{slot_tag(key_slot(meta(channel).encode()))}}}:epoch"

    def channel_sets(self, namespace: Namespace) -> tuple[str, ...]:
        return _channel_sets(self.cluster, namespace)

    def channel_set(self, namespace: Namespace, channel: str) -> str:
        sets = self.channel_sets(namespace)
        return sets[binascii.crc32(channel.encode()) % len(sets)]

    def direct(self, process_id: str) -> str:
        return f"pulse:direct:{{{process_id}}}" if self.cluster else f"pulse:direct:{process_id}"

    def is_direct(self, name: str) -> bool:
        return name.startswith("pulse:direct:")
