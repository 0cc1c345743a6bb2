//! Screenshots of the page as people use it, against a running `cargo xtask run`: three
//! tabs join; the first shares a text file and an image; the second opens the image's
//! link. Saves the sharing tab and the opening tab at 1280 and 390 px wide, in light and
//! dark, into a directory (default `docs/screenshots`).
//!
//! ```sh
//! cargo xtask run &                       # serves http://127.0.0.1:8080
//! cargo run -p past-e2e --example page_screenshots -- [URL] [DIR]
//! ```

use std::time::Duration;

use anyhow::Context as _;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::{
    MediaFeature, SetDeviceMetricsOverrideParams, SetEmulatedMediaParams,
};
use chromiumoxide::page::ScreenshotParams;
use past_e2e::{Chromium, eval, wait_for, wait_joined};

/// Shares a text file and a 320 × 200 image from the page; resolves to the image's link.
const SHARE: &str = r#"(async () => {
  const drop = document.querySelector('[data-testid=drop-zone]');
  const files = new DataTransfer();
  files.items.add(new File(["Minutes of the meeting\n"], 'minutes.txt', {type: 'text/plain'}));
  const canvas = Object.assign(document.createElement('canvas'), {width: 320, height: 200});
  const g = canvas.getContext('2d');
  const grad = g.createLinearGradient(0, 0, 320, 200);
  grad.addColorStop(0, '#2a6fdb'); grad.addColorStop(1, '#1e7e34');
  g.fillStyle = grad; g.fillRect(0, 0, 320, 200);
  g.fillStyle = '#fff'; g.font = 'bold 28px sans-serif'; g.fillText('shared over PAST', 40, 110);
  files.items.add(new File([await new Promise((ok) => canvas.toBlob(ok, 'image/png'))], 'banner.png', {type: 'image/png'}));
  drop.dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));
  while (document.querySelectorAll('[data-testid=upload][data-state=done]').length < 2) await new Promise((ok) => setTimeout(ok, 100));
  return [...document.querySelectorAll('[data-testid=share-link]')].map((l) => l.value).find((l) => l) ;
})()"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let dir = args.next().unwrap_or_else(|| "docs/screenshots".into());
    std::fs::create_dir_all(&dir)?;
    let origin = url.trim_end_matches('/').to_string();
    let browser = Chromium::launch().await?;
    let result = run(&browser, &origin, &url, &dir).await;
    browser.close().await;
    result
}

async fn run(browser: &Chromium, origin: &str, url: &str, dir: &str) -> anyhow::Result<()> {
    let mut pages = Vec::new();
    for i in 0..3 {
        let page = browser.open_in_new_context(origin, url).await?;
        wait_joined(&page, &format!("tab {i}"), Duration::from_secs(30)).await?;
        pages.push(page);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let link: String = eval(&pages[0], SHARE).await?;
    eval::<bool>(&pages[1], &format!("(location.hash = {:?}, true)", link.rsplit_once('#').map_or("", |p| p.1)))
        .await?;
    wait_for(
        "the image preview",
        Duration::from_secs(30),
        || async {
            Ok(eval::<bool>(&pages[1], "document.querySelector('[data-testid=preview] img')?.naturalWidth > 0")
                .await?
                .then_some(()))
        },
        || async { "-".to_string() },
    )
    .await?;
    for (name, page) in [("share", &pages[0]), ("open", &pages[1])] {
        for (width, height) in [(1280, 900), (390, 844)] {
            for dark in [false, true] {
                let path = format!("{dir}/{name}-{width}{}.png", if dark { "-dark" } else { "" });
                shoot(page, width, height, dark, &path).await?;
                println!("{path}");
            }
        }
    }
    Ok(())
}

async fn shoot(page: &Page, width: i64, height: i64, dark: bool, path: &str) -> anyhow::Result<()> {
    let metrics = SetDeviceMetricsOverrideParams::builder()
        .width(width)
        .height(height)
        .device_scale_factor(1.0)
        .mobile(width < 600)
        .build()
        .map_err(|e| anyhow::anyhow!("SetDeviceMetricsOverrideParams: {e}"))?;
    page.execute(metrics).await?;
    let scheme = MediaFeature::new("prefers-color-scheme", if dark { "dark" } else { "light" });
    page.execute(SetEmulatedMediaParams::builder().features(vec![scheme]).build()).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
        .await
        .with_context(|| format!("saving {path}"))?;
    Ok(())
}
