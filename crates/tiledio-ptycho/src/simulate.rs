//! A simulated ptychography detector (being written).
