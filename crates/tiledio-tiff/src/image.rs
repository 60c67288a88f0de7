//! Pixel arrays: the sample type and the host image (H×W×C, row-major, native byte order).

use crate::error::{Result, TiffError};

/// The type of one sample: the element type shared by every tiledio crate.
pub use tiledio_io::ElementType as SampleType;

/// A host image: `height × width × channels` samples, row-major, native byte order.
///
/// ```
/// use tiledio_tiff::{HostImage, SampleType};
/// let img = HostImage::from_u16(2, 3, 1, vec![1, 2, 3, 4, 5, 6])?;
/// assert_eq!(img.dtype(), SampleType::U16);
/// assert_eq!(img.to_u16()?[4], 5);
/// assert_eq!(img.bytes().len(), 12);
/// # Ok::<(), tiledio_tiff::TiffError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct HostImage {
    height: usize,
    width: usize,
    channels: usize,
    dtype: SampleType,
    data: Vec<u8>,
}

fn check_len(h: usize, w: usize, c: usize, dtype: SampleType, len: usize) -> Result<()> {
    let want = h
        .checked_mul(w)
        .and_then(|x| x.checked_mul(c))
        .and_then(|x| x.checked_mul(dtype.size()));
    if want != Some(len) || c == 0 {
        return Err(TiffError::InvalidArgument(format!(
            "{len} bytes do not make a {h}x{w}x{c} image of {}",
            dtype.name()
        )));
    }
    Ok(())
}

impl HostImage {
    /// An image from raw native-order bytes.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_bytes(1, 2, 3, tiledio_tiff::SampleType::U8, vec![0; 6])?;
    /// assert_eq!(img.shape(), (1, 2, 3));
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] if the length does not match the shape.
    pub fn from_bytes(
        height: usize,
        width: usize,
        channels: usize,
        dtype: SampleType,
        data: Vec<u8>,
    ) -> Result<HostImage> {
        check_len(height, width, channels, dtype, data.len())?;
        Ok(HostImage {
            height,
            width,
            channels,
            dtype,
            data,
        })
    }

    /// An image of `u8` samples.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 3, vec![1, 2, 3])?;
    /// assert_eq!(img.bytes(), &[1, 2, 3]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] if the length does not match the shape.
    pub fn from_u8(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Result<HostImage> {
        Self::from_bytes(height, width, channels, SampleType::U8, data)
    }

    /// An image of `u16` samples.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u16(1, 1, 1, vec![513])?;
    /// assert_eq!(img.to_u16()?, vec![513]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] if the length does not match the shape.
    pub fn from_u16(height: usize, width: usize, channels: usize, data: Vec<u16>) -> Result<HostImage> {
        let bytes = data.iter().flat_map(|v| v.to_ne_bytes()).collect();
        Self::from_bytes(height, width, channels, SampleType::U16, bytes)
    }

    /// An image of `f32` samples.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_f32(1, 2, 1, vec![0.5, -1.0])?;
    /// assert_eq!(img.to_f32()?, vec![0.5, -1.0]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] if the length does not match the shape.
    pub fn from_f32(height: usize, width: usize, channels: usize, data: Vec<f32>) -> Result<HostImage> {
        let bytes = data.iter().flat_map(|v| v.to_ne_bytes()).collect();
        Self::from_bytes(height, width, channels, SampleType::F32, bytes)
    }

    /// `(height, width, channels)`.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(2, 1, 1, vec![0, 0])?;
    /// assert_eq!(img.shape(), (2, 1, 1));
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.height, self.width, self.channels)
    }

    /// The sample type.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 1, vec![0])?;
    /// assert_eq!(img.dtype(), tiledio_tiff::SampleType::U8);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn dtype(&self) -> SampleType {
        self.dtype
    }

    /// The raw bytes (native byte order).
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 1, vec![9])?;
    /// assert_eq!(img.bytes(), &[9]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the image, giving its bytes.
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 1, vec![9])?;
    /// assert_eq!(img.into_bytes(), vec![9]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The image as an `height × width × channels` [`tiledio_io::HostArray`] (the vocabulary
    /// shared with the Zarr crate and the kernels).
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(2, 3, 1, vec![0; 6])?;
    /// assert_eq!(img.into_array()?.layout().shape(), &[2, 3, 1]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// Never for a valid image (the sizes were checked when it was made).
    pub fn into_array(self) -> Result<tiledio_io::HostArray> {
        let shape = [self.height as u64, self.width as u64, self.channels as u64];
        Ok(tiledio_io::HostArray::from_bytes(self.dtype, &shape, self.data)?)
    }

    /// The samples as `u8` (only for [`SampleType::U8`]).
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 1, vec![9])?;
    /// assert_eq!(img.as_u8()?, &[9]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for another sample type.
    pub fn as_u8(&self) -> Result<&[u8]> {
        self.want(SampleType::U8)?;
        Ok(&self.data)
    }

    /// The samples as `u16` (only for [`SampleType::U16`]).
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_u16(1, 1, 1, vec![7])?;
    /// assert_eq!(img.to_u16()?, vec![7]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for another sample type.
    pub fn to_u16(&self) -> Result<Vec<u16>> {
        self.want(SampleType::U16)?;
        Ok(self
            .data
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect())
    }

    /// The samples as `f32` (only for [`SampleType::F32`]).
    ///
    /// ```
    /// let img = tiledio_tiff::HostImage::from_f32(1, 1, 1, vec![2.5])?;
    /// assert_eq!(img.to_f32()?, vec![2.5]);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for another sample type.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.want(SampleType::F32)?;
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn want(&self, t: SampleType) -> Result<()> {
        if self.dtype != t {
            return Err(TiffError::InvalidArgument(format!(
                "image holds {}, not {}",
                self.dtype.name(),
                t.name()
            )));
        }
        Ok(())
    }

    /// Writes the image as a NumPy `.npy` file (shape `(H, W, C)`, little-endian).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let img = tiledio_tiff::HostImage::from_u8(1, 2, 1, vec![1, 2])?;
    /// img.write_npy(&dir.path().join("a.npy"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::Io`] if the file cannot be written.
    pub fn write_npy(&self, path: &std::path::Path) -> Result<()> {
        let bytes = npy_bytes(self.dtype, &[self.height, self.width, self.channels], &self.data);
        let w = tiledio_io::FileWriter::create(path)?;
        w.write_at(0, &bytes)?;
        w.finish(false)?;
        Ok(())
    }
}

/// A `.npy` (version 1.0) file holding `data` (native order; written little-endian).
pub(crate) fn npy_bytes(dtype: SampleType, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}{}), }}",
        dtype.npy_descr(),
        dims.join(", "),
        if shape.len() == 1 { "," } else { "" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    if cfg!(target_endian = "big") && dtype.size() > 1 {
        for c in data.chunks_exact(dtype.size()) {
            out.extend(c.iter().rev());
        }
    } else {
        out.extend_from_slice(data);
    }
    out
}
