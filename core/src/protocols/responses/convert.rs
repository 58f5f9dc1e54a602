//! A Responses request in the internal chat model, for providers that do not
//! speak Responses. What the model cannot carry is refused with a 400 naming
//! the field, before anything is held or sent.
//!
//! Two rules keep Codex working against every provider:
//! - `namespace` tools are flattened into functions named
//!   `{namespace}__{name}`; the names are restored on the calls the model
//!   makes ([`ToolNames`]).
//! - `web_search` tools are dropped: the model answers without searching.
//!   Codex declares one in every request (with `external_web_access: false`);
//!   refusing it would refuse Codex outright. Every other hosted tool
//!   (`file_search`, `code_interpreter`, `mcp`, `custom`, …) is refused.

use super::{items, parts_of, FormatKind, InItem, InPart, InRole, InTool, InToolChoice, ResponsesRequest};
use crate::chat::{Chat, Image, Message, OutputFormat, Part, Reasoning, Role, Tool, ToolChoice};
use crate::error::ApiError;
use crate::protocols::{StrOrList, StrOrObject};
use serde_json::{Number, Value};
use std::collections::HashMap;

/// Between a namespace's name and its function's in a flattened name.
const NAMESPACE_SEPARATOR: &str = "__";

/// Marks reasoning `encrypted_content` Hub minted from a provider's signature,
/// so that only Hub's own is sent back as one (another's is opaque).
pub const SIGNATURE_PREFIX: &str = "hub-signature:";

/// `include` values a converted answer can honour (or that ask for nothing).
const CONVERTIBLE_INCLUDES: &[&str] = &["reasoning.encrypted_content", "message.input_image.image_url"];

/// Flattened tool names and the namespaced names they stand for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolNames(HashMap<String, (String, String)>);

impl ToolNames {
    /// The namespace and name a flattened name stands for, if it is one.
    pub fn restore(&self, flat: &str) -> Option<(&str, &str)> {
        self.0.get(flat).map(|(ns, name)| (ns.as_str(), name.as_str()))
    }
}

/// The flat name of a function inside a namespace.
fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}{NAMESPACE_SEPARATOR}{name}")
}

impl ResponsesRequest {
    /// The request in the internal model, and the tool names flattened on the way.
    pub fn to_chat(&self) -> Result<(Chat, ToolNames), ApiError> {
        let b = &self.body;
        self.check_convertible()?;
        let mut chat = Chat {
            model: self.model.clone(),
            max_tokens: self.max_output_tokens,
            temperature: b.temperature.as_ref().and_then(Number::as_f64),
            top_p: b.top_p.as_ref().and_then(Number::as_f64),
            stream: self.stream,
            parallel_tool_calls: b.parallel_tool_calls,
            prompt: self.prompt,
            reasoning: reasoning_of(b.reasoning.as_ref().and_then(|r| r.effort.as_deref())),
            ..Default::default()
        };
        let mut system: Vec<String> = b.instructions.iter().cloned().collect();
        match &b.input {
            Some(StrOrList::Str(s)) => push(&mut chat.messages, Role::User, Part::Text(s.clone())),
            _ => {
                for (i, item) in items(b).iter().enumerate() {
                    add_item(&mut chat.messages, &mut system, i, item)?;
                }
            }
        }
        chat.system = (!system.is_empty()).then(|| system.join("\n\n"));
        let names = add_tools(&mut chat.tools, b.tools.as_deref().unwrap_or_default())?;
        chat.tool_choice = b.tool_choice.as_ref().map(tool_choice_of).transpose()?;
        chat.output = output_of(b);
        Ok((chat, names))
    }

    /// Members only a provider that speaks Responses can honour.
    fn check_convertible(&self) -> Result<(), ApiError> {
        let b = &self.body;
        for (i, inc) in b.include.iter().flatten().enumerate() {
            if !CONVERTIBLE_INCLUDES.contains(&inc.as_str()) {
                return Err(unconvertible(&format!("include[{i}]"), &format!("`{inc}`")));
            }
        }
        let set = |k: &str| b.extra.get(k).is_some_and(|v| !v.is_null());
        for field in ["prompt", "top_logprobs", "max_tool_calls"] {
            if set(field) {
                return Err(unconvertible(field, &format!("`{field}`")));
            }
        }
        Ok(())
    }
}

/// A 400 for what a converted provider cannot do, naming the field.
fn unconvertible(field: &str, what: &str) -> ApiError {
    ApiError::invalid_field(
        field,
        format!("({what}) needs a provider that speaks the Responses API; this model's provider does not. Drop it or pick a model served by OpenAI."),
    )
}

/// Reasoning asked for by effort; `none` (or no effort) asks for none.
fn reasoning_of(effort: Option<&str>) -> Option<Reasoning> {
    match effort {
        None | Some("none") => None,
        Some(e) => Some(Reasoning {
            effort: Some(e.to_string()),
            budget_tokens: None,
        }),
    }
}

/// Appends a part to the conversation, in the last turn if it has the same role.
fn push(messages: &mut Vec<Message>, role: Role, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.push(part),
        _ => messages.push(Message {
            role,
            parts: vec![part],
        }),
    }
}

/// One input item into the conversation (system and developer text apart).
fn add_item(messages: &mut Vec<Message>, system: &mut Vec<String>, i: usize, item: &InItem) -> Result<(), ApiError> {
    let at = |field: &str| format!("input[{i}].{field}");
    match item.kind.as_deref().unwrap_or("message") {
        "message" => add_message(messages, system, i, item),
        "function_call" => {
            let name = required(item.name.as_deref(), &at("name"))?;
            let name = match &item.namespace {
                Some(ns) => flat_name(ns, name),
                None => name.to_string(),
            };
            let call = Part::ToolCall {
                id: required(item.call_id.as_deref(), &at("call_id"))?.to_string(),
                name,
                arguments: item.arguments.clone().unwrap_or_default(),
            };
            push(messages, Role::Assistant, call);
            Ok(())
        }
        "function_call_output" => {
            let result = Part::ToolResult {
                id: required(item.call_id.as_deref(), &at("call_id"))?.to_string(),
                content: crate::chat::text_of(item.output.as_ref().unwrap_or(&Value::Null)),
                is_error: false,
            };
            push(messages, Role::User, result);
            Ok(())
        }
        "reasoning" => {
            add_reasoning(messages, item);
            Ok(())
        }
        other => Err(unconvertible(&at("type"), &format!("`{other}` items"))),
    }
}

fn required<'a>(v: Option<&'a str>, field: &str) -> Result<&'a str, ApiError> {
    v.ok_or_else(|| ApiError::invalid_field(field, "is required"))
}

/// Reasoning carried back: Hub's own keeps its signature (a provider that
/// signs its reasoning needs it back); another's is kept as unsigned text,
/// which providers that need a signature leave out.
fn add_reasoning(messages: &mut Vec<Message>, item: &InItem) {
    let text: String = item
        .summary
        .iter()
        .flatten()
        .filter_map(|p| p.text.as_deref())
        .collect();
    let signature = item
        .encrypted_content
        .as_deref()
        .and_then(|c| c.strip_prefix(SIGNATURE_PREFIX))
        .map(str::to_string);
    push(messages, Role::Assistant, Part::Reasoning { text, signature });
}

fn add_message(messages: &mut Vec<Message>, system: &mut Vec<String>, i: usize, item: &InItem) -> Result<(), ApiError> {
    let role = item
        .role
        .ok_or_else(|| ApiError::invalid_field(&format!("input[{i}].role"), "is required"))?;
    let parts = content_parts(i, item)?;
    let role = match role {
        InRole::System | InRole::Developer => {
            system.extend(parts.into_iter().filter_map(|p| match p {
                Part::Text(t) => Some(t),
                _ => None,
            }));
            return Ok(());
        }
        InRole::User => Role::User,
        InRole::Assistant => Role::Assistant,
    };
    for part in parts {
        push(messages, role, part);
    }
    Ok(())
}

/// A message's content as parts: text, images; refusals read as text.
fn content_parts(i: usize, item: &InItem) -> Result<Vec<Part>, ApiError> {
    if let Some(StrOrList::Str(s)) = &item.content {
        return Ok(vec![Part::Text(s.clone())]);
    }
    parts_of(item.content.as_ref())
        .iter()
        .enumerate()
        .map(|(j, p)| part_of(p, &format!("input[{i}].content[{j}]")))
        .collect()
}

fn part_of(p: &InPart, at: &str) -> Result<Part, ApiError> {
    match p.kind.as_deref() {
        Some("input_text" | "output_text" | "text") => Ok(Part::Text(p.text.clone().unwrap_or_default())),
        Some("refusal") => Ok(Part::Text(p.refusal.clone().unwrap_or_default())),
        Some("input_image") => match &p.image_url {
            Some(url) => Ok(Part::Image(Image::from_url(url))),
            None => Err(unconvertible(&format!("{at}.file_id"), "images by `file_id`")),
        },
        Some(other) => Err(unconvertible(&format!("{at}.type"), &format!("`{other}` parts"))),
        None => Err(ApiError::invalid_field(&format!("{at}.type"), "is required")),
    }
}

/// Function tools, namespaces flattened; hosted search dropped; others refused.
fn add_tools(out: &mut Vec<Tool>, tools: &[InTool]) -> Result<ToolNames, ApiError> {
    let mut names = ToolNames::default();
    for (i, t) in tools.iter().enumerate() {
        match t.kind.as_deref().unwrap_or("function") {
            "function" => out.push(function_of(t, None, &format!("tools[{i}]"))?),
            "namespace" => {
                let ns = required(t.name.as_deref(), &format!("tools[{i}].name"))?;
                for (j, inner) in t.tools.iter().flatten().enumerate() {
                    let tool = function_of(inner, Some(ns), &format!("tools[{i}].tools[{j}]"))?;
                    let name = inner.name.clone().unwrap_or_default();
                    names.0.insert(tool.name.clone(), (ns.to_string(), name));
                    out.push(tool);
                }
            }
            kind if super::DROPPED_TOOLS.contains(&kind) => {}
            kind => return Err(unconvertible(&format!("tools[{i}].type"), &format!("`{kind}` tools"))),
        }
    }
    Ok(names)
}

fn function_of(t: &InTool, namespace: Option<&str>, at: &str) -> Result<Tool, ApiError> {
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "function") {
        return Err(unconvertible(&format!("{at}.type"), &format!("`{kind}` tools")));
    }
    let name = required(t.name.as_deref(), &format!("{at}.name"))?;
    let parameters = match &t.parameters {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        // A function without parameters takes none.
        _ => serde_json::json!({"type": "object", "properties": {}}),
    };
    Ok(Tool {
        name: namespace.map_or_else(|| name.to_string(), |ns| flat_name(ns, name)),
        description: t.description.clone(),
        parameters,
    })
}

fn tool_choice_of(tc: &StrOrObject<InToolChoice>) -> Result<ToolChoice, ApiError> {
    match tc {
        StrOrObject::Str(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(ApiError::invalid_field(
                "tool_choice",
                "must be `auto`, `none`, `required` or an object",
            )),
        },
        StrOrObject::Object(o) => match (o.kind.as_deref(), &o.name) {
            (Some("function"), Some(name)) => Ok(ToolChoice::Tool(name.clone())),
            (Some("function"), None) => Err(ApiError::invalid_field("tool_choice.name", "is required")),
            (kind, _) => Err(unconvertible(
                "tool_choice.type",
                &format!("`{}` tool choices", kind.unwrap_or("untyped")),
            )),
        },
    }
}

fn output_of(b: &super::ResponsesBody) -> OutputFormat {
    let Some(f) = b.text.as_ref().and_then(|t| t.format.as_ref()) else {
        return OutputFormat::Text;
    };
    match f.kind {
        Some(FormatKind::JsonObject) => OutputFormat::Json,
        Some(FormatKind::JsonSchema) => OutputFormat::JsonSchema {
            name: f.name.clone().unwrap_or_default(),
            schema: f.schema.clone().unwrap_or(Value::Null),
            strict: f.strict.unwrap_or(false),
        },
        _ => OutputFormat::Text,
    }
}
