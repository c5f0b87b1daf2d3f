//! Audio: decoding WAV, FLAC, MP3 and Ogg Vorbis (symphonia), down-mixing, and
//! band-limited resampling (rubato's windowed-sinc resampler).

pub mod decode;
pub mod resample;

pub use decode::{decode, Audio};
pub use resample::resample;
