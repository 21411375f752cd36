"""The routing state machine (`machine.route`): one `RouteOrder` (`order`) in, exactly one RouterEvent out,
with its fill bookkeeping (`ledger`); `scripted` is a deterministic venue for testing it against known truth."""
