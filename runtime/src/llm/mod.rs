//! The language model through llama.cpp: prompt, image-embedding injection, sampling, chat.
