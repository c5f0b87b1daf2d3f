//! Pixel layouts an image can be decoded to.

use super::ImageError;

/// An 8-bit pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageMode {
    /// Grey.
    L,
    /// Grey with alpha.
    La,
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue, alpha.
    Rgba,
}

impl ImageMode {
    /// Parses a mode name (case-insensitive): `RGB`, `RGBA`, `L`, `LA`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        match s.to_ascii_uppercase().as_str() {
            "RGB" => Ok(Self::Rgb),
            "RGBA" => Ok(Self::Rgba),
            "L" | "GRAY" | "GREY" => Ok(Self::L),
            "LA" => Ok(Self::La),
            _ => Err(ImageError::UnknownMode(s.to_string())),
        }
    }

    /// The canonical name stored in the image struct.
    pub fn name(self) -> &'static str {
        match self {
            Self::L => "L",
            Self::La => "LA",
            Self::Rgb => "RGB",
            Self::Rgba => "RGBA",
        }
    }

    /// Bytes per pixel.
    pub fn channels(self) -> u8 {
        match self {
            Self::L => 1,
            Self::La => 2,
            Self::Rgb => 3,
            Self::Rgba => 4,
        }
    }
}
