//! Media bytes the simulator serves under `/media/...`: images generated in code (PNG), and
//! a real H.264 MP4, AAC M4A and animated GIF (tiny files made once with ffmpeg, in
//! `assets/`), each made unique per item by a trailing `free` box or GIF comment so that
//! two items never share bytes. Every blob knows its dimensions and duration.

/// The video every video item serves (`assets/video.mp4`): H.264, 72x128, 1 s.
const VIDEO: &[u8] = include_bytes!("../assets/video.mp4");
pub const VIDEO_SIZE: (u32, u32) = (72, 128);
pub const VIDEO_DURATION_MS: u64 = 1000;
/// The voice clip (`assets/voice.m4a`): AAC mono, 1.5 s.
const VOICE: &[u8] = include_bytes!("../assets/voice.m4a");
pub const VOICE_DURATION_MS: u64 = 1500;
/// The animated GIF (`assets/animated.gif`): 64x64, 3 frames.
const ANIMATED_GIF: &[u8] = include_bytes!("../assets/animated.gif");
pub const GIF_SIZE: (u32, u32) = (64, 64);

/// A stored media file: what `/media/{name}` answers with, and what it is.
#[derive(Clone, Default)]
pub struct Blob {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

impl Blob {
    /// Bytes of unknown dimensions (uploads).
    pub fn raw(content_type: String, bytes: Vec<u8>) -> Blob {
        Blob {
            content_type,
            bytes,
            ..Blob::default()
        }
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The file extension a stored blob gets, from its content type.
pub fn extension_for(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/aac" => "m4a",
        "audio/ogg" => "ogg",
        _ => "bin",
    }
}

/// A valid RGB PNG of `width`x`height` filled with a diagonal gradient seeded by `seed`,
/// so different media ids give visibly different images.
pub fn png(width: u32, height: u32, seed: u64) -> Blob {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    let base = (seed % 200) as u32;
    for y in 0..height {
        raw.push(0); // filter type None
        for x in 0..width {
            raw.push(((base + x * 255 / width.max(1)) % 256) as u8);
            raw.push(((base * 3 + y * 255 / height.max(1)) % 256) as u8);
            raw.push(((base * 7 + (x + y) * 127 / (width + height).max(1)) % 256) as u8);
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit depth, truecolor, no interlace
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut bytes, b"IHDR", &ihdr);
    png_chunk(&mut bytes, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut bytes, b"IEND", &[]);
    Blob {
        content_type: "image/png".into(),
        bytes,
        width: Some(width),
        height: Some(height),
        duration_ms: None,
    }
}

/// The animated GIF, with a comment extension naming `seed` before its trailer.
pub fn gif(seed: u64) -> Blob {
    let comment = format!("instagram-sim {seed}");
    let mut bytes = ANIMATED_GIF[..ANIMATED_GIF.len() - 1].to_vec();
    bytes.extend_from_slice(&[0x21, 0xfe, comment.len() as u8]);
    bytes.extend_from_slice(comment.as_bytes());
    bytes.extend_from_slice(&[0x00, 0x3b]);
    Blob {
        content_type: "image/gif".into(),
        bytes,
        width: Some(GIF_SIZE.0),
        height: Some(GIF_SIZE.1),
        duration_ms: Some(750),
    }
}

/// The MP4 video, unique through a trailing `free` box holding `seed`.
pub fn video(seed: u64) -> Blob {
    let mut bytes = VIDEO.to_vec();
    mp4_box(&mut bytes, b"free", &seed.to_be_bytes());
    Blob {
        content_type: "video/mp4".into(),
        bytes,
        width: Some(VIDEO_SIZE.0),
        height: Some(VIDEO_SIZE.1),
        duration_ms: Some(VIDEO_DURATION_MS),
    }
}

/// The M4A voice clip, unique through a trailing `free` box holding `seed`.
pub fn voice(seed: u64) -> Blob {
    let mut bytes = VOICE.to_vec();
    mp4_box(&mut bytes, b"free", &seed.to_be_bytes());
    Blob {
        content_type: "audio/mp4".into(),
        bytes,
        width: None,
        height: None,
        duration_ms: Some(VOICE_DURATION_MS),
    }
}

/// Real media files for tests to upload (what the simulator's own items serve): each call
/// with another `seed` gives different bytes of the same kind.
pub mod samples {
    /// A PNG of `width`x`height`.
    pub fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
        super::png(width, height, seed).bytes
    }

    /// An animated GIF, 64x64.
    pub fn gif(seed: u64) -> Vec<u8> {
        super::gif(seed).bytes
    }

    /// An H.264 MP4, 72x128, 1 s.
    pub fn mp4(seed: u64) -> Vec<u8> {
        super::video(seed).bytes
    }

    /// An AAC M4A voice clip, 1.5 s.
    pub fn m4a(seed: u64) -> Vec<u8> {
        super::voice(seed).bytes
    }
}

fn mp4_box(out: &mut Vec<u8>, kind: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib stream made of uncompressed ("stored") deflate blocks: valid and dependency-free.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    if chunks.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    for (index, chunk) in chunks.iter().enumerate() {
        let last = index + 1 == chunks.len();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_reference_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn adler32_matches_the_reference_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn png_has_signature_header_and_end_chunk() {
        let blob = png(4, 3, 7);
        assert_eq!(&blob.bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&blob.bytes[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes(blob.bytes[16..20].try_into().unwrap()),
            4
        );
        assert_eq!(
            u32::from_be_bytes(blob.bytes[20..24].try_into().unwrap()),
            3
        );
        assert_eq!(
            &blob.bytes[blob.bytes.len() - 8..blob.bytes.len() - 4],
            b"IEND"
        );
    }

    #[test]
    fn video_and_voice_are_unique_iso_bmff_files_ending_in_a_free_box() {
        let (one, two) = (video(1), video(2));
        assert_eq!(&one.bytes[4..8], b"ftyp");
        assert_ne!(one.bytes, two.bytes);
        assert_eq!(
            &one.bytes[one.bytes.len() - 12..one.bytes.len() - 8],
            b"free"
        );
        let clip = voice(1);
        assert_eq!(&clip.bytes[4..8], b"ftyp");
        assert_eq!(clip.content_type, "audio/mp4");
    }

    #[test]
    fn gif_keeps_its_header_and_trailer() {
        let blob = gif(7);
        assert_eq!(&blob.bytes[..6], b"GIF89a");
        assert_eq!(blob.bytes.last(), Some(&0x3b));
        assert_ne!(blob.bytes, gif(8).bytes);
    }
}
