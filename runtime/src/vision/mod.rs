//! InternViT-300M encoder, pixel shuffle and MLP projector, on rayon + SIMD kernels.
