"""Run-time: the streaming Simulator that play, eval, bench and agents all share."""
