"""The Python encoder's stable hash of category strings, as TensorFlow ops.

`mtrec.features.vocabulary.hash_ids` maps a value to
`2 + pandas.util.hash_array(value) % hash_buckets`: SipHash-2-4 of the UTF-8
bytes with the key `"0123456789123456"`, then pandas' 64-bit mixing step.
TensorFlow's `tf.strings.to_hash_bucket_strong` is the same SipHash-2-4 but
returns only `hash % num_buckets`; two calls (mod 2**32 and mod 2**32 + 1)
give back the whole 64-bit hash (Chinese remainder), so the ids here equal
the Python encoder's bit for bit.
"""

from __future__ import annotations

import tensorflow as tf

from mtrec.features.vocabulary import _HASH_KEY, FIRST_ID

#: The SipHash key as TensorFlow takes it: two little-endian uint64 (both below 2**63).
SIPHASH_KEY = [int.from_bytes(_HASH_KEY.encode()[:8], "little"),
               int.from_bytes(_HASH_KEY.encode()[8:], "little")]
_LOW = 2**32
_COPRIME = 2**32 + 1


def _shift(x: tf.Tensor, bits: int) -> tf.Tensor:
    return tf.bitwise.right_shift(x, tf.constant(bits, tf.uint64))


def siphash64(strings: tf.Tensor) -> tf.Tensor:
    """`pandas.util.hash_array(strings, encoding="utf8", hash_key=_HASH_KEY, categorize=False)`.

    Args:
        strings: a string tensor of any shape.

    Returns:
        A uint64 tensor of the same shape.
    """
    low = tf.strings.to_hash_bucket_strong(strings, _LOW, SIPHASH_KEY)
    rest = tf.strings.to_hash_bucket_strong(strings, _COPRIME, SIPHASH_KEY)
    # hash = high * 2**32 + low with high < 2**32, and 2**32 = -1 (mod 2**32 + 1).
    high = tf.math.floormod(low - rest, _COPRIME)
    h = tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.cast(high, tf.uint64), tf.constant(32, tf.uint64)),
                              tf.cast(low, tf.uint64))
    # pandas' redistribution of the 64-bit values (splitmix64's finalizer).
    h = tf.bitwise.bitwise_xor(h, _shift(h, 30))
    h = h * tf.constant(0xBF58476D1CE4E5B9, tf.uint64)
    h = tf.bitwise.bitwise_xor(h, _shift(h, 27))
    h = h * tf.constant(0x94D049BB133111EB, tf.uint64)
    return tf.bitwise.bitwise_xor(h, _shift(h, 31))


def hash_ids(strings: tf.Tensor, hash_buckets: int) -> tf.Tensor:
    """`mtrec.features.vocabulary.hash_ids` in the graph: `2 + siphash64(value) % hash_buckets`, int32.

    Args:
        strings: category strings, any shape.
        hash_buckets: int. Buckets of the table.

    Returns:
        int32 ids of the same shape.
    """
    buckets = tf.math.floormod(siphash64(strings), tf.constant(hash_buckets, tf.uint64))
    return tf.cast(buckets, tf.int32) + FIRST_ID
