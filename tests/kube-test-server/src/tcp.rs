//! Serving the test server over plain HTTP on loopback, for clients in other processes (a worker
//! binary started by a test, with a kubeconfig pointing at the returned address).

use crate::{TestServer, http};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

impl TestServer {
    /// Serves this server on `127.0.0.1` at an ephemeral port until the runtime ends; requests are
    /// recorded as made by `user`. Returns the address.
    pub async fn serve_tcp(&self, user: &str) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = self.shared();
        let user = user.to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = inner.clone();
                let user = user.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let inner = inner.clone();
                        let user = user.clone();
                        async move { Ok::<_, Infallible>(http::handle(inner, &user, req).await) }
                    });
                    if let Err(error) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "test server connection ended");
                    }
                });
            }
        });
        Ok(addr)
    }

    /// A kubeconfig (YAML) for clients of [`TestServer::serve_tcp`] at `addr`, in `namespace`.
    pub fn kubeconfig(addr: SocketAddr, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    \
             user: test\n    namespace: {namespace}\ncurrent-context: test\n"
        )
    }
}
