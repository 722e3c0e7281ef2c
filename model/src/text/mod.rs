//! Text to token ids: [`tokenizer`] (from GGUF metadata or `tokenizer.json`), [`chat_template`]
//! (the model's Jinja template through minijinja) and [`answer_mask`] (prompt and answer ids
//! with the answer masked in, as TRL tokenizes them).

pub mod answer_mask;
pub mod chat_template;
pub mod tokenizer;
