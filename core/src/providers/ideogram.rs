//! Ideogram image generation (`Api-Key` header). Three generations of the
//! API are in use and picked by model name: the legacy JSON `/generate`
//! (`V_1` … `V_2A_TURBO`), Ideogram 3 multipart `/v1/ideogram-v3/generate`
//! (`V_3`), and the JSON `/v2/image/generate/{model}` of later models. All
//! answer `{"data": [{"url", "prompt", "resolution", "seed", "is_image_safe"}]}`.

use crate::error::ApiError;
use crate::ports::Timeouts;
use crate::ports::UpstreamRequest;
use bytes::Bytes;
use serde_json::{json, Value};

pub fn headers(secret: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = secret {
        h.push(("api-key".to_string(), s.to_string()));
    }
    h
}

/// OpenAI's `size` (`1024x1792`) as a reduced aspect ratio (`4x7`).
fn aspect(size: Option<&str>) -> Option<(u64, u64)> {
    let (w, h) = size?.split_once('x')?;
    let (w, h): (u64, u64) = (w.parse().ok()?, h.parse().ok()?);
    if w == 0 || h == 0 {
        return None;
    }
    let g = gcd(w, h);
    Some((w / g, h / g))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The URL, content type and body for an OpenAI-style image request.
pub fn request(base: &str, model: &str, body: &Value) -> Result<(String, String, Bytes), ApiError> {
    let prompt = body.get("prompt").and_then(Value::as_str).unwrap_or_default();
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1);
    if body.get("response_format").and_then(Value::as_str) == Some("b64_json") {
        return Err(crate::chat::unsupported(
            "ideogram",
            "`response_format: b64_json` (Ideogram answers with URLs)",
        ));
    }
    let ratio = aspect(body.get("size").and_then(Value::as_str));
    let json_ct = "application/json".to_string();
    if model.starts_with("V_1") || model.starts_with("V_2") {
        let mut req = json!({"prompt": prompt, "model": model, "num_images": n});
        if let Some((w, h)) = ratio {
            req["aspect_ratio"] = json!(format!("ASPECT_{w}_{h}"));
        }
        let body = serde_json::to_vec(&json!({ "image_request": req })).unwrap_or_default();
        return Ok((format!("{base}/generate"), json_ct, body.into()));
    }
    if model == "V_3" || model.starts_with("ideogram-v3") {
        let boundary = "hub-ideogram-form-boundary";
        let mut form = String::new();
        let mut field = |name: &str, value: &str| {
            form.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        };
        field("prompt", prompt);
        field("num_images", &n.to_string());
        if let Some((w, h)) = ratio {
            field("aspect_ratio", &format!("{w}x{h}"));
        }
        form.push_str(&format!("--{boundary}--\r\n"));
        return Ok((
            format!("{base}/v1/ideogram-v3/generate"),
            format!("multipart/form-data; boundary={boundary}"),
            form.into(),
        ));
    }
    let mut req = json!({ "prompt": prompt });
    if n > 1 {
        req["num_images"] = json!(n);
    }
    let body = serde_json::to_vec(&req).unwrap_or_default();
    Ok((format!("{base}/v2/image/generate/{model}"), json_ct, body.into()))
}

/// Ideogram's answer as OpenAI's `{"created", "data": [{"url", "revised_prompt"}]}`, and the image count.
pub fn to_openai(body: &[u8], created: i64) -> Result<(Value, u64), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::provider("The provider answered with something that is not JSON."))?;
    let data: Vec<Value> = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::provider("The provider's answer has no images."))?
        .iter()
        .map(|img| {
            json!({
                "url": img.get("url").cloned().unwrap_or(Value::Null),
                "revised_prompt": img.get("prompt").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let n = data.len() as u64;
    Ok((json!({"created": created, "data": data}), n))
}

/// Ideogram has no free listing call: a generate request without a prompt is
/// refused with 400/422 for a good key and 401/403 for a bad one.
pub fn probe(base: &str, secret: Option<&str>, timeouts: Timeouts) -> Result<UpstreamRequest, ApiError> {
    let body = serde_json::to_vec(&json!({"image_request": {}})).unwrap_or_default();
    Ok(UpstreamRequest {
        method: http::Method::POST,
        url: format!("{base}/generate"),
        headers: headers(secret),
        body: body.into(),
        timeouts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_api_by_model_and_maps_sizes() {
        let body = json!({"prompt": "a cat", "n": 2, "size": "1024x1792"});
        let (url, ct, b) = request("https://api.ideogram.ai", "V_2", &body).unwrap();
        assert_eq!(url, "https://api.ideogram.ai/generate");
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["image_request"]["aspect_ratio"], "ASPECT_4_7");
        assert_eq!(v["image_request"]["num_images"], 2);
        let (url, ct, b) = request("https://api.ideogram.ai", "V_3", &body).unwrap();
        assert_eq!(url, "https://api.ideogram.ai/v1/ideogram-v3/generate");
        assert!(ct.starts_with("multipart/form-data; boundary="));
        let text = String::from_utf8(b.to_vec()).unwrap();
        assert!(text.contains("name=\"aspect_ratio\"\r\n\r\n4x7\r\n"));
        let (url, _, _) = request("https://api.ideogram.ai", "ideogram-4-5", &body).unwrap();
        assert_eq!(url, "https://api.ideogram.ai/v2/image/generate/ideogram-4-5");
        assert!(request("b", "V_3", &json!({"prompt": "x", "response_format": "b64_json"})).is_err());
    }
}
