//! Large host buffers, allocated fallibly and against a memory budget.
//!
//! A hostile or simply huge input (a TIFF declaring 16777216² pixels, a Zarr array of
//! 100000×100000×3, a `--region` larger than memory) must give a typed error, never abort the
//! process with "memory allocation failed". Every buffer whose size comes from input goes
//! through [`try_alloc_zeroed`] (or is checked first with [`check_memory`]).

use crate::error::{IoError, Result};
use crate::settings::Settings;

/// The memory budget in bytes: `TILEDIO_MAX_MEMORY` when set (and valid), else the default
/// ([`Settings::default`]'s `max_memory`: half of the machine's physical memory).
///
/// ```
/// assert!(tiledio_io::memory_budget() > 0);
/// ```
pub fn memory_budget() -> u64 {
    Settings::from_env()
        .map(|s| s.max_memory)
        .unwrap_or_else(|_| Settings::default().max_memory)
}

/// Half of physical memory, at least 256 MiB (the default memory budget).
pub(crate) fn default_budget() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let phys = if pages > 0 && page > 0 {
        (pages as u64).saturating_mul(page as u64)
    } else {
        8 << 30
    };
    (phys / 2).max(256 << 20)
}

/// Checks that a buffer of `bytes` fits the memory budget; `what` names it in the error.
///
/// ```
/// assert!(tiledio_io::check_memory(1 << 20, "a small buffer").is_ok());
/// assert!(tiledio_io::check_memory(u64::MAX, "a huge buffer").is_err());
/// ```
///
/// # Errors
/// [`IoError::OutOfMemory`] when `bytes` exceeds the budget.
pub fn check_memory(bytes: u64, what: &str) -> Result<()> {
    let budget = memory_budget();
    if bytes > budget {
        return Err(IoError::OutOfMemory {
            what: what.to_string(),
            bytes,
            budget,
        });
    }
    Ok(())
}

/// A zeroed host buffer of `len` bytes, refused with a typed error when it exceeds the memory
/// budget or the allocation fails. The memory comes from `calloc`-style zeroed pages, so the
/// kernel zeroes it lazily (no serial memset of a whole level).
///
/// ```
/// let v = tiledio_io::try_alloc_zeroed(4096, "a tile")?;
/// assert_eq!(v.len(), 4096);
/// assert!(v.iter().all(|&b| b == 0));
/// assert!(tiledio_io::try_alloc_zeroed(usize::MAX, "everything").is_err());
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
///
/// # Errors
/// [`IoError::OutOfMemory`] over the budget or when the system refuses the allocation.
pub fn try_alloc_zeroed(len: usize, what: &str) -> Result<Vec<u8>> {
    check_memory(len as u64, what)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let refused = || IoError::OutOfMemory {
        what: what.to_string(),
        bytes: len as u64,
        budget: memory_budget(),
    };
    let layout = std::alloc::Layout::array::<u8>(len).map_err(|_| refused())?;
    // SAFETY: `layout` has a non-zero size; a null result is handled; a non-null pointer owns
    // `len` zeroed bytes allocated by the global allocator with the alignment of u8, which is
    // what `Vec<u8>` of capacity `len` expects to free.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        if p.is_null() {
            return Err(refused());
        }
        Ok(Vec::from_raw_parts(p, len, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_before_allocating() {
        let e = check_memory(u64::MAX, "test buffer").unwrap_err();
        assert!(matches!(e, IoError::OutOfMemory { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("test buffer") && msg.contains("TILEDIO_MAX_MEMORY"),
            "{msg}"
        );
    }

    #[test]
    fn zeroed_and_sized() {
        let v = try_alloc_zeroed(1 << 20, "x").unwrap();
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&b| b == 0));
    }
}
