//! [`BlockingClient`]: an [`LmmClient`] for programs that are not async.

use std::fmt;

use som_core::{GroundingAnswer, GroundingRequest};

use crate::client::LmmClient;
use crate::config::ClientConfig;
use crate::error::LmmError;

/// An [`LmmClient`] with its own single-threaded runtime, for programs that
/// are not async.
///
/// ```no_run
/// use som_lmm::{BlockingClient, ClientConfig, Provider};
/// # fn demo(marked: &som_core::MarkedImage) -> Result<(), som_lmm::LmmError> {
/// let client = BlockingClient::new(ClientConfig::new(Provider::Ollama, "qwen2.5vl"))?;
/// let answer = client.ask(&som_core::GroundingRequest::new(marked, "Which mark is the dog?"))?;
/// # Ok(()) }
/// ```
pub struct BlockingClient {
    client: LmmClient,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        // A plain drop would panic inside an async context; this never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingClient")
            .field("client", &self.client)
            .finish()
    }
}

impl BlockingClient {
    /// Builds the client and its runtime.
    ///
    /// # Errors
    /// As [`LmmClient::new`], and [`LmmError::Config`] when the runtime cannot start.
    pub fn new(config: ClientConfig) -> Result<Self, LmmError> {
        let client = LmmClient::new(config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LmmError::Config(format!("cannot start the async runtime: {e}")))?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }

    /// The async client inside.
    pub fn client(&self) -> &LmmClient {
        &self.client
    }

    /// Asks and waits for the answer.
    ///
    /// # Errors
    /// As [`LmmClient::ask`]; [`LmmError::Config`] when called from inside an
    /// async runtime (which cannot block).
    pub fn ask(&self, request: &GroundingRequest<'_>) -> Result<GroundingAnswer, LmmError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(LmmError::Config(
                "BlockingClient::ask was called inside an async runtime; use LmmClient::ask there".into(),
            ));
        }
        match &self.runtime {
            Some(rt) => rt.block_on(self.client.ask(request)),
            None => Err(LmmError::Config("the blocking client has shut down".into())),
        }
    }
}
