//! .npy read/write (f32, i64, u8; C order) for reference fixtures and debug dumps.
