//! `video_frames` options in and out of their wire form (`regatta_proto::VideoOptions`),
//! shared by the physical codec (the scan) and the logical one (the table).

use datafusion::error::{DataFusionError, Result as DfResult};
use regatta_engine::functions::OnError;
use regatta_engine::video::{FrameSelection, VideoOptions};
use regatta_proto::video_options::Selection;
use regatta_proto::{VideoOnError, VideoOptions as OptionsMsg};

pub(crate) fn video_options_to_msg(o: &VideoOptions) -> OptionsMsg {
    OptionsMsg {
        width: o.width.unwrap_or(0),
        height: o.height.unwrap_or(0),
        selection: Some(match o.selection {
            FrameSelection::EveryNth(n) => Selection::EveryNth(n),
            FrameSelection::PerSecond(fps) => Selection::PerSecond(fps),
            FrameSelection::KeyFrames => Selection::KeyFrames(true),
        }),
        max_frames: o.max_frames.unwrap_or(0),
        on_error: match o.on_error {
            OnError::Raise => VideoOnError::Raise,
            OnError::Null => VideoOnError::Null,
            OnError::Skip => VideoOnError::Skip,
            OnError::Record => VideoOnError::Record,
        } as i32,
        timeout_ms: o
            .timeout
            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// Options from the wire; a selection that decodes to nothing sensible (none,
/// every 0th frame, a rate that is not a positive number) is refused.
pub(crate) fn video_options_from_msg(m: Option<OptionsMsg>) -> DfResult<VideoOptions> {
    let m =
        m.ok_or_else(|| DataFusionError::Plan("video_frames: a plan without options".into()))?;
    let nonzero = |n: u32| (n > 0).then_some(n);
    let on_error = match m.on_error() {
        VideoOnError::Raise => OnError::Raise,
        VideoOnError::Null => OnError::Null,
        VideoOnError::Skip => OnError::Skip,
        VideoOnError::Record => OnError::Record,
    };
    Ok(VideoOptions {
        width: nonzero(m.width),
        height: nonzero(m.height),
        selection: match m.selection {
            Some(Selection::EveryNth(n)) if n > 0 => FrameSelection::EveryNth(n),
            Some(Selection::PerSecond(fps)) if fps.is_finite() && fps > 0.0 => {
                FrameSelection::PerSecond(fps)
            }
            Some(Selection::KeyFrames(true)) => FrameSelection::KeyFrames,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "video_frames: a plan with frame selection {other:?}"
                )))
            }
        },
        max_frames: (m.max_frames > 0).then_some(m.max_frames),
        on_error,
        timeout: (m.timeout_ms > 0).then(|| std::time::Duration::from_millis(m.timeout_ms)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_the_wire_and_nonsense_is_refused() {
        for text in [
            "",
            "size=320x240, every=5, limit=7, on_error=null, timeout_ms=2500",
            "width=100, fps=2.5",
            "keyframes=true",
        ] {
            let o = VideoOptions::parse(text).unwrap();
            let back = video_options_from_msg(Some(video_options_to_msg(&o))).unwrap();
            assert_eq!(format!("{back:?}"), format!("{o:?}"), "{text}");
        }
        let mut bad = video_options_to_msg(&VideoOptions::default());
        bad.selection = Some(Selection::EveryNth(0));
        let err = video_options_from_msg(Some(bad)).unwrap_err().to_string();
        assert!(err.contains("frame selection"), "{err}");
        assert!(video_options_from_msg(None).is_err());
    }
}
