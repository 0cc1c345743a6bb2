//! Checks a running `cargo xtask run` the way a person would with two tabs: opens the page
//! twice (two browser contexts of headless Chromium), waits until both joined the overlay,
//! routes a message from the first to the second's id with the form, and prints what each
//! page shows.
//!
//! ```sh
//! cargo xtask run &                       # serves http://127.0.0.1:8080
//! cargo run -p past-e2e --example two_tabs -- [URL] [SCREENSHOT.png]
//! ```

use std::time::Duration;

use anyhow::{Context as _, ensure};
use chromiumoxide::page::ScreenshotParams;
use past_e2e::{Chromium, eval, wait_for};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let screenshot = args.next();
    let origin = url.trim_end_matches('/').to_string();
    let browser = Chromium::launch().await?;
    let result = check(&browser, &origin, &url, screenshot.as_deref()).await;
    browser.close().await;
    result
}

async fn check(browser: &Chromium, origin: &str, url: &str, screenshot: Option<&str>) -> anyhow::Result<()> {
    let first = browser.open_in_new_context(origin, url).await?;
    let second = browser.open_in_new_context(origin, url).await?;
    let mut ids = Vec::new();
    for (name, page) in [("first", &first), ("second", &second)] {
        ids.push(past_e2e::wait_joined(page, name, Duration::from_secs(30)).await?);
    }
    // Type and route through the form, as a person would.
    let sent: bool = eval(
        &first,
        &format!(
            "(async () => {{ document.getElementById('route-key').value = {:?}; \
              document.getElementById('route-text').value = 'hello from the first tab ✓'; \
              document.getElementById('route-form').requestSubmit(); return true; }})()",
            ids[1]
        ),
    )
    .await?;
    ensure!(sent, "could not submit the form");
    let log: String = wait_for(
        "the message to show in the second tab",
        Duration::from_secs(10),
        || async {
            let log: String = eval(&second, "document.getElementById('log').textContent").await?;
            Ok(log.contains("hello from the first tab").then_some(log))
        },
        || async { "-".to_string() },
    )
    .await?;
    for (name, page) in [("first", &first), ("second", &second)] {
        let text: String = eval(page, "document.querySelector('main').innerText").await?;
        println!("--- {name} tab ---\n{text}\n");
    }
    println!("OK: the two tabs joined and the routed message arrived");
    let _ = log;
    if let Some(path) = screenshot {
        second
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
            .await
            .with_context(|| format!("saving {path}"))?;
        println!("screenshot of the second tab: {path}");
    }
    Ok(())
}
