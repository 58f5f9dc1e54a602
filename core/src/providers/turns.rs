//! Conversation turns as Anthropic's and Bedrock's bodies take them.

/// One `{role, content: [...]}` turn of Anthropic's and Bedrock's bodies.
#[derive(Debug, serde::Serialize)]
pub struct Turn<B> {
    pub role: crate::chat::Role,
    pub content: Vec<B>,
}

/// Appends a turn, merged into the previous one when it has the same role
/// (Anthropic and Bedrock want turns to alternate).
pub(crate) fn push_turn<B>(turns: &mut Vec<Turn<B>>, role: crate::chat::Role, content: Vec<B>) {
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => turns.push(Turn { role, content }),
    }
}
