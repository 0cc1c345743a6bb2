//! Issue 11, the page as people use it, through its `data-testid` contract (README): three
//! tabs join and say so; one drops a text file on the drop zone and picks an image with the
//! file input; each gets a progress bar, then a share link, a copy button, a QR code and
//! its receipts. Opening the text's link in another tab shows its name, the verified badge,
//! a text preview and a download under its name with the same bytes; the image's link shows
//! the image. A malformed link, an unknown fileId and a wrong key each show their message.
//! Reclaiming from "My files" asks first, then shows the reclaim receipts, and the link
//! stops working. The ring and the routing table are drawn, and a lookup's route is traced.

use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use past_e2e::{Chromium, FAST_TIMERS, eval, joined_contexts, wait_for, with_browser};

const TEXT: &str = "Minutes of the meeting\\nPAST stores this on three strangers' tabs ✓\\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_on_the_page_opens_from_its_link_in_another_tab() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

/// Text of the element with `data-testid` `id` ('' when absent).
fn text_of(id: &str) -> String {
    format!("(document.querySelector('[data-testid={id}]')?.textContent ?? '').trim()")
}

/// Waits until `expression` (JS) yields a non-empty string or true, for at most `secs`.
async fn until(page: &Page, what: &str, expression: &str, secs: u64) -> anyhow::Result<serde_json::Value> {
    wait_for(
        what,
        Duration::from_secs(secs),
        || async {
            let v: serde_json::Value = eval(page, expression).await?;
            let ready = match &v {
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Null => false,
                _ => true,
            };
            Ok(ready.then_some(v))
        },
        || async { eval::<String>(page, &text_of("status")).await.unwrap_or_default() },
    )
    .await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let (named, contexts) = joined_contexts(browser, origin, &url, 3, "tab").await?;
    let (owner, reader, third) = (&named[0].1, &named[1].1, &named[2].1);
    until(
        owner,
        "the status to count two peers",
        &format!("{}.startsWith('Connected to 2 peers')", text_of("status")),
        10,
    )
    .await?;

    // Share: k = 2, encrypted (the default); a text file dropped, an image picked.
    let shared: bool = eval(
        owner,
        &format!(
            "(async () => {{
               document.querySelector('[data-testid=k-select]').value = '2';
               const drop = document.querySelector('[data-testid=drop-zone]');
               const text = new DataTransfer();
               text.items.add(new File([\"{TEXT}\"], 'minutes.txt', {{type: 'text/plain'}}));
               drop.dispatchEvent(new DragEvent('drop', {{dataTransfer: text, bubbles: true, cancelable: true}}));
               const canvas = Object.assign(document.createElement('canvas'), {{width: 40, height: 30}});
               const g = canvas.getContext('2d'); g.fillStyle = '#c33'; g.fillRect(0, 0, 40, 30);
               const png = await new Promise((ok) => canvas.toBlob(ok, 'image/png'));
               const picked = new DataTransfer();
               picked.items.add(new File([png], 'red.png', {{type: 'image/png'}}));
               const input = document.querySelector('[data-testid=file-input]');
               input.files = picked.files;
               input.dispatchEvent(new Event('change'));
               return document.querySelectorAll('[data-testid=upload] [data-testid=progress] progress').length === 2;
             }})()"
        ),
    )
    .await?;
    anyhow::ensure!(shared, "each file did not get a progress bar");
    until(
        owner,
        "both files to be stored",
        "document.querySelectorAll('[data-testid=upload][data-state=done]').length === 2",
        60,
    )
    .await?;
    let (links, qr_codes, copy_buttons, stages): (Vec<String>, usize, usize, Vec<String>) = eval(
        owner,
        "[[...document.querySelectorAll('[data-testid=upload]')].reverse().map((u) => u.querySelector('[data-testid=share-link]').value),
          document.querySelectorAll('[data-testid=upload] [data-testid=qr-code] svg').length,
          document.querySelectorAll('[data-testid=upload] [data-testid=copy-button]').length,
          [...document.querySelectorAll('[data-testid=upload] .stage')].map((s) => s.textContent)]",
    )
    .await?;
    anyhow::ensure!(links.len() == 2 && qr_codes == 2 && copy_buttons == 2, "{links:?}, {qr_codes} QR codes");
    for stage in &stages {
        anyhow::ensure!(stage == "Stored on 2 nodes · 2 signed receipts", "upload says {stage:?}");
    }
    let (text_link, image_link) = (&links[0], &links[1]);
    anyhow::ensure!(text_link.starts_with(&format!("{origin}/#")) && text_link.contains('.'), "{text_link}");
    until(
        owner,
        "my files to list both",
        "document.querySelectorAll('[data-testid=my-files] [data-testid=my-file]').length === 2",
        10,
    )
    .await?;

    // Open the text's link in a joined tab (a new fragment, no reload): the file, verified,
    // previewed, and downloaded under its name.
    let downloads = tempfile::tempdir()?;
    browser.allow_downloads(&contexts[1], downloads.path()).await?;
    eval::<bool>(reader, &format!("(location.hash = {:?}, true)", text_link.rsplit_once('#').map_or("", |p| p.1)))
        .await?;
    until(reader, "the verified badge", "!document.querySelector('[data-testid=verified-badge]').hidden", 30).await?;
    let plain = TEXT.replace("\\n", "\n");
    until(reader, "the text preview", &format!("{}.includes('strangers')", text_of("preview")), 30).await?;
    let preview: String = eval(reader, "document.querySelector('[data-testid=preview] pre').textContent").await?;
    anyhow::ensure!(preview == plain, "preview shows {preview:?}");
    let name: String = eval(reader, "document.getElementById('open-name').textContent").await?;
    anyhow::ensure!(name == "minutes.txt", "the page names the file {name:?}");
    eval::<bool>(reader, "(document.querySelector('[data-testid=download-button]').click(), true)").await?;
    let saved = downloads.path().join("minutes.txt");
    wait_for(
        "the download of minutes.txt",
        Duration::from_secs(20),
        || async { Ok(std::fs::read(&saved).ok().filter(|b| b.len() == plain.len())) },
        || async { "no download yet".to_string() },
    )
    .await?;
    anyhow::ensure!(std::fs::read_to_string(&saved)? == plain, "the downloaded bytes differ");
    let traced: String =
        eval(reader, "document.querySelector('[data-testid=ring]').getAttribute('aria-label')").await?;
    anyhow::ensure!(traced.contains("Route"), "no route traced on the ring: {traced}");
    let cells: usize = eval(reader, "document.querySelectorAll('[data-testid=routing-table] td').length").await?;
    anyhow::ensure!(cells >= 16, "routing table with {cells} cells");

    // Bad links: each shows its message.
    let file_id = text_link.rsplit_once('#').and_then(|(_, f)| f.split_once('.')).map_or("", |p| p.0).to_string();
    for (fragment, code) in [
        ("not-a-link".to_string(), "bad-link"),
        ("ab".repeat(20), "not-found"),
        (format!("{file_id}.{}", "A".repeat(43)), "wrong-key"),
    ] {
        eval::<bool>(third, &format!("(location.hash = {fragment:?}, true)")).await?;
        until(
            third,
            &format!("the {code} message"),
            &format!("document.querySelector('[data-testid=error-message]')?.dataset.code === {code:?}"),
            30,
        )
        .await?;
        let message: String = eval(third, &text_of("error-message")).await?;
        anyhow::ensure!(!message.is_empty() && !message.contains("undefined"), "{code}: {message:?}");
        let retry: bool = eval(third, "!document.querySelector('[data-testid=retry-button]').hidden").await?;
        anyhow::ensure!(retry == (code == "not-found"), "{code}: a retry button shown {retry}");
    }

    // Reclaim the text from My files: asked first, then its receipts; the link then fails.
    eval::<bool>(
        owner,
        "(() => { const item = [...document.querySelectorAll('[data-testid=my-file]')]
             .find((li) => li.textContent.includes('minutes.txt'));
           item.querySelector('[data-testid=reclaim-button]').click();
           return !!item.querySelector('[data-testid=reclaim-confirm]'); })()",
    )
    .await?;
    eval::<bool>(owner, "(document.querySelector('[data-testid=reclaim-confirm]').click(), true)").await?;
    let receipts = until(owner, "the reclaim receipts", &text_of("reclaim-receipts"), 30).await?;
    anyhow::ensure!(receipts == "Reclaimed: 2 signed reclaim receipts.", "{receipts}");
    eval::<bool>(third, &format!("(location.hash = {:?}, true)", text_link.rsplit_once('#').map_or("", |p| p.1)))
        .await?;
    until(
        third,
        "not-found after the reclaim",
        "document.querySelector('[data-testid=error-message]')?.dataset.code === 'not-found'",
        30,
    )
    .await?;
    // The image's link opened in a new tab (a fourth node, joining after the
    // reclaim so that the replica set of the reclaimed file stayed the same): the image is shown.
    let viewer = browser.open_in_context(&contexts[2], image_link).await?;
    until(&viewer, "the image preview", "document.querySelector('[data-testid=preview] img')?.naturalWidth === 40", 40)
        .await?;

    let stored: String = eval(reader, &text_of("stored-here")).await?;
    anyhow::ensure!(stored.contains("held for other people"), "stored here: {stored}");

    // On a phone (390 px wide), nothing sticks out sideways, with a file open and shared.
    for page in [owner, reader] {
        let overflow = fits_width(page, 390).await?;
        anyhow::ensure!(overflow.is_empty(), "at 390 px these stick out: {overflow}");
    }
    Ok(())
}

/// Shows `page` in a window `width` px wide; returns the elements that stick out of it ("" if
/// none; what scrolls inside a box of its own does not count).
async fn fits_width(page: &Page, width: i64) -> anyhow::Result<String> {
    let metrics = SetDeviceMetricsOverrideParams::builder()
        .width(width)
        .height(844)
        .device_scale_factor(1.0)
        .mobile(false)
        .build()
        .map_err(|e| anyhow::anyhow!("SetDeviceMetricsOverrideParams: {e}"))?;
    page.execute(metrics).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    eval(
        page,
        &format!(
            "document.documentElement.scrollWidth <= {width} ? '' :
               [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > {width} + 1)
                 .filter((e) => {{ for (let a = e.parentElement; a; a = a.parentElement) if (getComputedStyle(a).overflowX !== 'visible') return false; return true; }})
                 .map((e) => `${{e.tagName.toLowerCase()}}#${{e.id}}.${{e.className.baseVal ?? e.className}} (${{Math.round(e.getBoundingClientRect().right)}} px)`)
                 .slice(0, 12).join(', ')"
        ),
    )
    .await
}
