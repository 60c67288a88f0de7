//! 2× area-average downsampling for pyramid levels, a band of rows at a time: the CPU
//! reference of the downsample kernel in [`tiledio_kernels`] (`half_row`: integers rounded
//! half up, floats `(((a + b) + c) + d) / 4`), so CPU and GPU levels are identical.

pub(crate) use tiledio_kernels::half_row;
