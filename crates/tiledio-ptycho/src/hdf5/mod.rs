//! HDF5 datasets as frame stores (being written: see the crate docs).
