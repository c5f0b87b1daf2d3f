#!/usr/bin/env python3
"""faster-whisper on WAV clips, as benches/peer/daft_media.py runs it inside W7
(greedy, English, no timestamps, no VAD), one clip after another after a warm-up;
prints one JSON line with the seconds and the texts.

Usage: fw_transcribe.py CT2_DIR CLIP.wav [CLIP.wav ...] [--threads 2] [--compute float32]
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute", default="float32")
    a = ap.parse_args()
    from faster_whisper import WhisperModel, decode_audio

    model = WhisperModel(a.model, device="cpu", compute_type=a.compute, cpu_threads=a.threads)
    pcm = [decode_audio(c, sampling_rate=16000) for c in a.clips]

    def run(p):
        segs, _ = model.transcribe(p, beam_size=1, language="en", without_timestamps=True,
                                   vad_filter=False, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segs).strip()

    run(pcm[0])
    t0 = time.perf_counter()
    texts = [run(p) for p in pcm]
    secs = time.perf_counter() - t0
    print(json.dumps({"engine": f"faster-whisper-{a.compute}", "clips": len(pcm), "seconds": round(secs, 3),
                      "texts": texts}))


if __name__ == "__main__":
    main()
