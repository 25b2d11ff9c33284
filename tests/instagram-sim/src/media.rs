//! Media bytes the simulator serves under `/media/...`: small images generated in code
//! (PNG), a GIF, and minimal ISO-BMFF containers standing in for video and voice clips.

/// A stored media file: what `/media/{name}` answers with.
#[derive(Clone)]
pub struct Blob {
    pub content_type: String,
    pub bytes: Vec<u8>,
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
    }
}

/// The classic 1x1 GIF89a, enough for animated_media URLs to resolve.
pub fn gif() -> Blob {
    Blob {
        content_type: "image/gif".into(),
        bytes: vec![
            0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff,
            0xff, 0xff, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00,
            0x3b,
        ],
    }
}

/// A minimal ISO-BMFF file (`ftyp` + `mdat`) for video (`mp42`) or audio (`M4A `).
/// It sniffs as MP4/M4A; it is not meant to be played.
pub fn iso_bmff(audio: bool, seed: u64) -> Blob {
    let brand: &[u8; 4] = if audio { b"M4A " } else { b"mp42" };
    let mut bytes = Vec::new();
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(brand);
    ftyp.extend_from_slice(&0u32.to_be_bytes());
    ftyp.extend_from_slice(brand);
    ftyp.extend_from_slice(b"isom");
    mp4_box(&mut bytes, b"ftyp", &ftyp);
    mp4_box(&mut bytes, b"mdat", &seed.to_be_bytes());
    Blob {
        content_type: if audio { "audio/mp4" } else { "video/mp4" }.into(),
        bytes,
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
    fn iso_bmff_starts_with_ftyp_box() {
        let blob = iso_bmff(true, 1);
        assert_eq!(&blob.bytes[4..12], b"ftypM4A ");
        assert_eq!(blob.content_type, "audio/mp4");
    }
}
