//! The built-in Ollama simulator (stub until the `sim` branch lands).

pub struct SimConfig {
    pub profile: String,
    pub seed: u64,
    pub time_scale: f64,
}

pub struct SimServer {
    pub addr: std::net::SocketAddr,
}

impl SimServer {
    pub async fn shutdown(self) {}
}

pub async fn start(_config: SimConfig, _addr: std::net::SocketAddr) -> anyhow::Result<SimServer> {
    anyhow::bail!("simulator not available yet")
}

pub async fn serve_until(
    _config: SimConfig,
    _listener: tokio::net::TcpListener,
    _shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::bail!("simulator not available yet")
}

pub fn profile_names() -> Vec<&'static str> {
    vec![]
}
