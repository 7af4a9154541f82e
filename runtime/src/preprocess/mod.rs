//! Image preprocessing: decode, PIL-exact resize, dynamic tiling, MSAC, normalization.
