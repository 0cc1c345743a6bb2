//! Glue of the JS API's file operations: reading their options, and turning the driver's
//! answers into promises.

use futures::channel::oneshot;
use js_sys::{Function, Reflect};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;

use crate::driver::ApiError;

/// Default replication factor of an insert.
const DEFAULT_K: u8 = 3;

/// The options of `insert`.
pub(crate) struct InsertOptions {
    pub(crate) k: u8,
    pub(crate) encrypt: bool,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) on_progress: Option<Function>,
}

fn field(options: &JsValue, key: &str) -> JsValue {
    if options.is_object() {
        Reflect::get(options, &key.into()).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The function `options[key]`, if it is one.
pub(crate) fn callback(options: &JsValue, key: &str) -> Option<Function> {
    field(options, key).dyn_into::<Function>().ok()
}

impl InsertOptions {
    /// Reads `{k, encrypt, name, onProgress}`; the name defaults to the `File`'s.
    pub(crate) fn read(file: &web_sys::Blob, options: &JsValue) -> Result<Self, String> {
        let k = match field(options, "k").as_f64() {
            None => DEFAULT_K,
            Some(k) if k.fract() == 0.0 && (1.0..=255.0).contains(&k) => k as u8,
            Some(k) => return Err(format!("k must be a whole number from 1 up, not {k}")),
        };
        let encrypt = field(options, "encrypt").as_bool().unwrap_or(true);
        let file_name = Reflect::get(file, &"name".into()).ok().and_then(|n| n.as_string());
        let name = field(options, "name").as_string().or(file_name).unwrap_or_else(|| "file".into());
        if name.is_empty() {
            return Err("the name must not be empty".into());
        }
        Ok(InsertOptions { k, encrypt, name, mime: file.type_(), on_progress: callback(options, "onProgress") })
    }
}

/// A promise settled by the driver's answer.
pub(crate) fn promise(answer: oneshot::Receiver<Result<JsValue, ApiError>>) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_js()),
            Err(_) => Err(ApiError::new("closed", "the node closed before the operation ended").to_js()),
        }
    })
}

/// A promise rejected at once.
pub(crate) fn rejected(code: &'static str, message: &str) -> js_sys::Promise {
    js_sys::Promise::reject(&ApiError::new(code, message).to_js())
}
