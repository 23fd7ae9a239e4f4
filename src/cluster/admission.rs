//! Refusals of the server's admission that a real cluster shows and a user needs explained, not
//! pasted: an admission webhook the server cannot call (its service has no ready endpoints,
//! typically because the package that serves it is not running yet), and a namespace that is
//! being deleted. Read from the Status the server answers: `report::failure` words an object's
//! failure with it, `Cluster::explain` any other error (`diff`, the ApplySet parent).

use super::api_status;

/// Why admission refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `failed calling webhook "NAME"`: a webhook with `failurePolicy: Fail` that the server
    /// could not reach.
    WebhookUnreachable {
        webhook: String,
        /// `namespace/name` of the Service it calls, when the webhook calls one.
        service: Option<String>,
        /// The server's words for what went wrong (`no endpoints available for service "x"`).
        problem: String,
    },
    /// The object's namespace is Terminating: nothing new can be created in it.
    NamespaceTerminating { namespace: String },
}

impl Refusal {
    /// The refusal `err` reports, if it is one of these.
    pub fn of(err: &kube::Error) -> Option<Refusal> {
        let status = api_status(err)?;
        let message = status.message.as_str();
        if let Some(rest) = message.split("failed calling webhook \"").nth(1) {
            let webhook = rest.split('"').next()?.to_owned();
            // `... failed to call webhook: Post "https://svc.ns.svc:443/path?timeout=10s": problem`
            let url = rest
                .split("Post \"")
                .nth(1)
                .and_then(|u| u.split('"').next());
            let service = url
                .and_then(|u| u.strip_prefix("https://"))
                .and_then(|u| u.split([':', '/']).next())
                .and_then(|host| {
                    let mut parts = host.split('.');
                    let (name, namespace) = (parts.next()?, parts.next()?);
                    (parts.next() == Some("svc")).then(|| format!("{namespace}/{name}"))
                });
            let problem = message
                .rsplit("\": ")
                .next()
                .filter(|p| !p.contains("failed calling webhook"))
                .unwrap_or("the call failed")
                .to_owned();
            return Some(Refusal::WebhookUnreachable {
                webhook,
                service,
                problem,
            });
        }
        let terminating = status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
            || message.contains("because it is being terminated");
        if status.code == 403 && terminating {
            let namespace = message
                .split("in namespace ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("?")
                .to_owned();
            return Some(Refusal::NamespaceTerminating { namespace });
        }
        None
    }

    /// One line saying what refused the request.
    pub fn message(&self) -> String {
        match self {
            Refusal::WebhookUnreachable {
                webhook,
                service: Some(service),
                problem,
            } => format!(
                "admission webhook {webhook} (service {service}) cannot be called: {problem}"
            ),
            Refusal::WebhookUnreachable {
                webhook, problem, ..
            } => format!("admission webhook {webhook} cannot be called: {problem}"),
            Refusal::NamespaceTerminating { namespace } => {
                format!("namespace {namespace} is being deleted (Terminating)")
            }
        }
    }

    /// How to get out.
    pub fn hint(&self) -> String {
        match self {
            Refusal::WebhookUnreachable { service, .. } => format!(
                "its failurePolicy is Fail, so the server refuses what it matches until the webhook answers: \
                 wait until the Deployment behind {} is ready, or apply the package that serves it \
                 first (`needs:` in kpin.yaml)",
                service
                    .as_deref()
                    .map_or_else(|| "the webhook".to_owned(), |s| format!("service {s}"))
            ),
            Refusal::NamespaceTerminating { namespace } => format!(
                "wait until it is gone and apply again; if it stays Terminating, an object in it has a \
                 finalizer no controller removes: `kubectl api-resources --verbs=list --namespaced -o name \
                 | xargs -n1 kubectl get -n {namespace} --ignore-not-found` lists what is left"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str, cause: Option<&str>) -> kube::Error {
        let causes: Vec<serde_json::Value> = cause
            .map(|reason| serde_json::json!({"reason": reason, "message": message}))
            .into_iter()
            .collect();
        kube::Error::Api(
            serde_json::from_value(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": "", "details": {"causes": causes}, "code": code}))
            .unwrap(),
        )
    }

    #[test]
    fn an_unreachable_webhook_is_named_with_its_service_and_the_problem() {
        // The words of a real kube-apiserver v1.36 for a webhook whose service has no endpoints.
        let err = status(
            500,
            "Internal error occurred: failed calling webhook \"validate.nginx.ingress.kubernetes.io\": failed to call webhook: Post \"https://ingress-nginx-controller-admission.ingress-nginx.svc:443/networking/v1/ingresses?timeout=10s\": no endpoints available for service \"ingress-nginx-controller-admission\"",
            None,
        );
        let refusal = Refusal::of(&err).expect("a webhook refusal");
        assert_eq!(
            refusal.message(),
            "admission webhook validate.nginx.ingress.kubernetes.io (service ingress-nginx/ingress-nginx-controller-admission) cannot be called: no endpoints available for service \"ingress-nginx-controller-admission\""
        );
        assert!(
            refusal
                .hint()
                .contains("service ingress-nginx/ingress-nginx-controller-admission")
        );
    }

    #[test]
    fn a_terminating_namespace_is_named() {
        let err = status(
            403,
            "configmaps \"settings\" is forbidden: unable to create new content in namespace demo because it is being terminated",
            Some("NamespaceTerminating"),
        );
        assert_eq!(
            Refusal::of(&err),
            Some(Refusal::NamespaceTerminating {
                namespace: "demo".into()
            })
        );
        assert_eq!(Refusal::of(&status(403, "forbidden", None)), None);
    }
}
