//! Providers: one module per wire protocol; vendors that share a protocol are
//! data (a kind, a default base URL, quirks), not code.

pub mod openai_compat;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAiCompat,
}

/// A kind of provider an operator can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vendor {
    pub kind: &'static str,
    pub display_name: &'static str,
    pub wire: Wire,
    pub default_base_url: &'static str,
    /// Whether calls need a credential (Ollama runs without one).
    pub needs_secret: bool,
}

const fn openai_like(
    kind: &'static str,
    display_name: &'static str,
    default_base_url: &'static str,
    needs_secret: bool,
) -> Vendor {
    Vendor {
        kind,
        display_name,
        wire: Wire::OpenAiCompat,
        default_base_url,
        needs_secret,
    }
}

pub const VENDORS: &[Vendor] = &[
    openai_like("openai", "OpenAI", "https://api.openai.com/v1", true),
    openai_like("deepseek", "DeepSeek", "https://api.deepseek.com/v1", true),
    openai_like("xai", "xAI", "https://api.x.ai/v1", true),
    openai_like("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", true),
    openai_like("ollama", "Ollama", "http://localhost:11434/v1", false),
    openai_like("doubao", "Doubao", "https://ark.cn-beijing.volces.com/api/v3", true),
    openai_like("poe", "Poe", "https://api.poe.com/v1", true),
    openai_like("openai-compatible", "OpenAI-compatible", "", true),
];

pub fn vendor(kind: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.kind == kind)
}
