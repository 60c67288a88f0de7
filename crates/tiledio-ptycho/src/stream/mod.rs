//! Live frame streams over ZeroMQ (being written).
