//! Converting Matrix media Instagram does not take, with the host's ffmpeg
//! (`media.ffmpeg`), as mautrix-meta does: Element records voice messages as
//! Ogg/Opus while Instagram takes AAC in MP4 (M4A), and WebM videos become
//! H.264 MP4. Without ffmpeg such media is refused with a reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;

/// Longest one conversion may take (a minute of voice takes about a second).
const TIMEOUT: Duration = Duration::from_secs(120);

/// What to convert into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// AAC audio in an MP4 container, Instagram's voice message format.
    VoiceM4a,
    /// H.264 video with AAC audio in MP4.
    VideoMp4,
}

impl Target {
    fn extension(self) -> &'static str {
        match self {
            Target::VoiceM4a => "m4a",
            Target::VideoMp4 => "mp4",
        }
    }

    fn codec_args(self) -> &'static [&'static str] {
        match self {
            Target::VoiceM4a => &["-vn", "-c:a", "aac", "-b:a", "96k", "-ar", "44100"],
            Target::VideoMp4 => &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-preset",
                "veryfast",
                "-c:a",
                "aac",
                "-movflags",
                "+faststart",
            ],
        }
    }
}

/// Converts `bytes` with the ffmpeg program `ffmpeg`; `Err` is the reason
/// for the user.
pub async fn convert(ffmpeg: &str, bytes: &[u8], target: Target) -> Result<Vec<u8>, String> {
    if ffmpeg.is_empty() {
        return Err("the bridge is set up without a converter (media.ffmpeg)".to_owned());
    }
    let work = WorkDir::new().map_err(|e| format!("the bridge cannot convert it ({e})"))?;
    let input = work.path.join("input");
    let output = work.path.join(format!("output.{}", target.extension()));
    tokio::fs::write(&input, bytes)
        .await
        .map_err(|e| format!("the bridge cannot convert it ({e})"))?;
    let mut command = Command::new(ffmpeg);
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(&input)
        .args(target.codec_args())
        .arg(&output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = command.output();
    let finished = match tokio::time::timeout(TIMEOUT, run).await {
        Ok(Ok(finished)) => finished,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the bridge's host has no converter ({ffmpeg} is not installed)"
            ))
        }
        Ok(Err(e)) => return Err(format!("the converter did not start ({e})")),
        Err(_) => return Err("converting it took too long".to_owned()),
    };
    if !finished.status.success() {
        let detail = String::from_utf8_lossy(&finished.stderr);
        tracing::debug!(%detail, "ffmpeg failed");
        return Err("the converter could not read it".to_owned());
    }
    tokio::fs::read(&output)
        .await
        .map_err(|e| format!("the converter wrote nothing ({e})"))
}

/// A private directory for one conversion, removed when dropped.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> std::io::Result<WorkDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "matrix-instagram-convert-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        create_private_dir(&path)?;
        Ok(WorkDir { path })
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of a tone in `format` (`ogg` Opus or `webm` VP9), made by ffmpeg.
    fn sample(format: &str) -> Vec<u8> {
        let dir = WorkDir::new().unwrap();
        let path = dir.path.join(format!("sample.{format}"));
        let args: &[&str] = match format {
            "ogg" => &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=1",
                "-c:a",
                "libopus",
            ],
            _ => &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10:duration=1",
                "-c:v",
                "libvpx-vp9",
            ],
        };
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(&path)
            .status()
            .expect("ffmpeg must be installed for these tests (.ci/run installs it)");
        assert!(status.success(), "ffmpeg made no {format} sample");
        std::fs::read(&path).unwrap()
    }

    fn is_mp4(bytes: &[u8]) -> bool {
        bytes.len() > 12
            && &bytes[4..8] == b"ftyp"
            && bytes.windows(4).any(|window| window == b"moov")
    }

    #[tokio::test]
    async fn an_ogg_voice_message_becomes_m4a() {
        let ogg = sample("ogg");
        assert_eq!(&ogg[..4], b"OggS");
        let m4a = convert("ffmpeg", &ogg, Target::VoiceM4a).await.unwrap();
        assert!(is_mp4(&m4a));
        assert!(m4a.windows(4).any(|window| window == b"mp4a"), "AAC audio");
    }

    #[tokio::test]
    async fn a_webm_video_becomes_mp4() {
        let webm = sample("webm");
        let mp4 = convert("ffmpeg", &webm, Target::VideoMp4).await.unwrap();
        assert!(is_mp4(&mp4));
        assert!(
            mp4.windows(4).any(|window| window == b"avc1"),
            "H.264 video"
        );
    }

    #[tokio::test]
    async fn garbage_and_a_missing_converter_are_explained() {
        let err = convert("ffmpeg", b"not media at all", Target::VoiceM4a)
            .await
            .unwrap_err();
        assert_eq!(err, "the converter could not read it");
        let err = convert("/nonexistent/ffmpeg", b"x", Target::VoiceM4a)
            .await
            .unwrap_err();
        assert!(err.contains("no converter"), "{err}");
        let err = convert("", b"x", Target::VoiceM4a).await.unwrap_err();
        assert!(err.contains("media.ffmpeg"), "{err}");
    }
}
