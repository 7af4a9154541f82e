//! ggml reference quantizers, byte-identical to ggml-quants.c `quantize_row_*_ref`.
