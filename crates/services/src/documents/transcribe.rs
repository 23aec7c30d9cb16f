//! Speech to text for audio and video, after the sandbox has described them: the
//! transcript becomes the document's text, and is scanned, redacted, indexed and
//! searched like any other.

use std::path::Path;

use aether_domain::job::UploadJob;
use aether_domain::processing::Extracted;
use tracing::Instrument as _;

use super::DocumentService;

/// What `transcription` in a document's metadata says.
const COMPLETED: &str = "completed";
const UNAVAILABLE: &str = "unavailable";
const FAILED: &str = "failed";

impl DocumentService {
    /// Puts the speech of an audio or video file into `extraction`'s text, with
    /// `transcription: completed`, the model and the language in its metadata; or says
    /// why not (`unavailable`: no service, or a file larger than it takes; `failed`:
    /// the service refused or could not be reached, with a warning). Returns whether
    /// there is new text. Never fails the job: the file is kept with its metadata.
    pub(super) async fn transcribe(&self, job: &UploadJob, input: &Path, extraction: &mut Extracted) -> bool {
        if !matches!(extraction.format.as_str(), "audio" | "video") {
            return false;
        }
        let Some(transcriber) = &self.transcriber else {
            extraction.metadata.insert("transcription".into(), UNAVAILABLE.into());
            return false;
        };
        let size = job.file.as_ref().map_or(0, |f| f.size);
        if size > transcriber.max_bytes() {
            extraction.metadata.insert("transcription".into(), UNAVAILABLE.into());
            extraction.warnings.push(format!(
                "not transcribed: the file is larger than the transcription service takes ({} bytes)",
                transcriber.max_bytes()
            ));
            return false;
        }
        let span = tracing::info_span!("job.transcribe", model = transcriber.model());
        let transcribed =
            transcriber.transcribe(input, job.filename.as_str(), &extraction.content_type).instrument(span).await;
        match transcribed {
            Ok(transcript) => {
                extraction.metadata.insert("transcription".into(), COMPLETED.into());
                extraction.metadata.insert("transcription_model".into(), transcriber.model().into());
                if let Some(language) = transcript.language {
                    extraction.metadata.insert("transcription_language".into(), language.into());
                }
                if transcript.text.is_empty() {
                    return false;
                }
                let words = transcript.text.split_whitespace().count();
                extraction.metadata.insert("word_count".into(), words.into());
                extraction.metadata.insert("char_count".into(), transcript.text.chars().count().into());
                extraction.text = Some(transcript.text);
                true
            }
            Err(error) => {
                extraction.metadata.insert("transcription".into(), FAILED.into());
                extraction.warnings.push(format!("not transcribed: {error}"));
                false
            }
        }
    }
}
