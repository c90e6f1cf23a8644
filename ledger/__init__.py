"""The points books: double-entry accounts, lots, holds and their invariants (no Flask here)."""
