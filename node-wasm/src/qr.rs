//! QR codes of share links, drawn as SVG for the page.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use wasm_bindgen::prelude::*;

/// An SVG QR code of `text` (error correction level M, with its quiet zone), scaled by its
/// `viewBox`. Fails when `text` is too long for a QR code.
#[wasm_bindgen(js_name = qrSvg)]
pub fn qr_svg(text: &str) -> Result<String, JsError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| JsError::new(&format!("no QR code for this text: {e}")))?;
    Ok(code.render::<svg::Color<'_>>().dark_color(svg::Color("#000")).light_color(svg::Color("#fff")).build())
}
