//! Tiled TIFF / BigTIFF whole-slide reader and pyramidal writer (in progress).
