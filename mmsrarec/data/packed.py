"""Per-user lists held as one flat array: how a loaded dataset keeps its sequences, timestamps
and negatives.

A dict of Python lists costs about 36 bytes an element (an 8-byte slot and a 28-byte int or
24-byte float object): at 10^5 items x 10^6 users, 15 M interactions and 40 M negatives took
4.75 GB. Here an element costs its array's itemsize (int32 items, float64 timestamps) and a
user one offset and one key.

`PackedLists` is a read-only `Mapping[str, list[T]]` in the users' order: `packed[user]` is a
fresh Python list (callers compare, concatenate and slice it as before), and `array(user)`
the same span as a read-only numpy view, for loops over every interaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T", int, float)


class PackedLists(Mapping[str, list[T]], Generic[T]):
    """`flat[offsets[u]:offsets[u + 1]]` is the list of `users[u]`.

    Args:
        users: the keys, in order (each once).
        offsets: int64 [len(users) + 1], from 0 to `len(flat)`, non-decreasing.
        flat: every list, one after another.
        index: `{user: position}` for `users`: another `PackedLists`' `index` to share one.

    `flat` and `offsets` are kept, not copied, and made read-only.
    """

    def __init__(
        self,
        users: Sequence[str],
        offsets: np.ndarray,
        flat: np.ndarray,
        index: dict[str, int] | None = None,
    ) -> None:
        if len(offsets) != len(users) + 1 or offsets[0] != 0 or offsets[-1] != len(flat):
            raise ValueError("`offsets` must run from 0 to len(flat), one more than `users`")
        self.users = list(users)
        self.index = index if index is not None else {u: i for i, u in enumerate(self.users)}
        if len(self.index) != len(self.users):
            raise ValueError("`users` must be distinct, and `index` must hold exactly them")
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.flat = flat
        for array in (self.offsets, self.flat):
            array.flags.writeable = False  # views handed out stay what the mapping says

    @classmethod
    def from_lists(cls, lists: Mapping[str, Sequence[T]], dtype: type) -> PackedLists[T]:
        """A packed copy of `lists` (any mapping of user to list), in its order."""
        lengths = np.fromiter((len(v) for v in lists.values()), np.int64, len(lists))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter((x for v in lists.values() for x in v), dtype, int(offsets[-1]))
        return cls(list(lists), offsets, flat)

    def array(self, user: str) -> np.ndarray:
        """`user`'s list as a read-only view of `flat` (KeyError for an unknown user)."""
        position = self.index[user]
        return self.flat[self.offsets[position] : self.offsets[position + 1]]

    def lengths(self) -> np.ndarray:
        """int64 [len(self)]: each user's list length, in order."""
        return np.diff(self.offsets)

    def __getitem__(self, user: str) -> list[T]:
        return self.array(user).tolist()

    def __contains__(self, user: object) -> bool:
        return user in self.index

    def __iter__(self) -> Iterator[str]:
        return iter(self.users)

    def __len__(self) -> int:
        return len(self.users)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedLists) and self.users == other.users:
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(
                self.flat, other.flat
            )
        return super().__eq__(other)  # as dicts: the same keys and lists, in any order

    __hash__ = None  # type: ignore[assignment]  # a mapping, as dict

    def __repr__(self) -> str:
        return f"PackedLists({len(self.users)} users, {len(self.flat)} {self.flat.dtype})"
