"""Pure functions from RouterEvents and market snapshots to numbers; nothing here writes anything."""
