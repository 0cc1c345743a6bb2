//! Issue 11: a video opened from its share link plays while it arrives. One tab records a
//! short WebM clip (MediaRecorder, VP8, a canvas of noise so it is several chunks long) and
//! shares it through the file input as `video/webm` (no codecs named, as a file from disk);
//! another tab opens the link: the page finds the codec in the clip's header, and the preview
//! is a `<video>` fed chunk by chunk through Media Source Extensions (each verified chunk
//! appended as it comes, not one Blob at the end) that has the clip's metadata.

use std::time::Duration;

use past_e2e::{Chromium, FAST_TIMERS, eval, joined_contexts, wait_for, with_browser};

/// Records about 1.5 s of a noisy canvas as WebM and shares it; resolves to [link, size].
const RECORD_AND_SHARE: &str = r#"(async () => {
  const canvas = Object.assign(document.createElement('canvas'), {width: 160, height: 120});
  const g = canvas.getContext('2d');
  const noise = g.createImageData(160, 120);
  const draw = () => { crypto.getRandomValues(noise.data.subarray(0, 65536)); g.putImageData(noise, 0, 0); };
  const timer = setInterval(draw, 20);
  const recorder = new MediaRecorder(canvas.captureStream(30), {mimeType: 'video/webm;codecs=vp8', videoBitsPerSecond: 4000000});
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  recorder.start();
  await new Promise((ok) => setTimeout(ok, 1500));
  const stopped = new Promise((ok) => recorder.onstop = ok);
  recorder.stop();
  await stopped;
  clearInterval(timer);
  const clip = new File(parts, 'clip.webm', {type: 'video/webm'});
  const picked = new DataTransfer();
  picked.items.add(clip);
  document.querySelector('[data-testid=k-select]').value = '1';
  const input = document.querySelector('[data-testid=file-input]');
  input.files = picked.files;
  input.dispatchEvent(new Event('change'));
  while (!document.querySelector('[data-testid=upload][data-state=done]')) await new Promise((ok) => setTimeout(ok, 100));
  return [document.querySelector('[data-testid=share-link]').value, clip.size];
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_video_plays_while_it_arrives() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let (named, _) = joined_contexts(browser, origin, &url, 2, "tab").await?;
    let (owner, viewer) = (&named[0].1, &named[1].1);
    let supported: bool = eval(viewer, "MediaSource.isTypeSupported('video/webm; codecs=\"vp8\"')").await?;
    anyhow::ensure!(supported, "this Chromium has no Media Source Extensions for WebM");

    let (link, size): (String, usize) = eval(owner, RECORD_AND_SHARE).await?;
    let chunks = size.div_ceil(64 << 10);
    anyhow::ensure!(chunks >= 3, "the clip is {size} bytes: too short to arrive in several chunks");
    eval::<bool>(viewer, &format!("(location.hash = {:?}, true)", link.rsplit_once('#').map_or("", |p| p.1))).await?;
    let (appends, ready, duration): (usize, u32, f64) = wait_for(
        "the clip to be appended chunk by chunk",
        Duration::from_secs(30),
        || async {
            let state: Option<(usize, u32, f64)> = eval(
                viewer,
                "(() => { const v = document.querySelector('[data-testid=preview] video[data-streamed=true]');
                   return v && [Number(v.dataset.appends), v.readyState, Number.isFinite(v.duration) ? v.duration : -1]; })()",
            )
            .await?;
            Ok(state.filter(|(appends, ready, _)| *appends == chunks && *ready >= 1))
        },
        || async {
            eval::<String>(viewer, "document.querySelector('[data-testid=open-view]').innerHTML.slice(0, 400)")
                .await
                .unwrap_or_default()
        },
    )
    .await?;
    eprintln!("{size} bytes in {appends} appends; readyState {ready}, duration {duration}");
    let error: Option<u32> = eval(viewer, "document.querySelector('[data-testid=preview] video').error?.code").await?;
    anyhow::ensure!(error.is_none(), "the video element reports error {error:?}");
    Ok(())
}
