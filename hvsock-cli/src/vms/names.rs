//! VM names in arguments (`vsock:myvm:5000`, `hvsock client myvm`). clap checks an endpoint's
//! form; once every argument is parsed, the names in all of them are looked up together, in
//! one look at this machine's VMs (`args::parse`), so that FROM and TO are resolved alike and
//! a name that is not there is a usage error whichever argument it is in.

use std::cell::OnceCell;

use hvsock::{Endpoint, Printable, Service, Vm};

use super::{discover, resolve, Discovery, FoundVm, Reach};

/// An endpoint argument: ready as given, naming a VM still to be looked up, or (relay's TO) a
/// wildcard each client fills in.
#[derive(Clone, Debug)]
pub struct EndpointArg {
    text: String,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    Ready(Endpoint, Option<Box<FoundVm>>),
    Named,
    Wildcard,
}

impl EndpointArg {
    /// clap's parser: an endpoint (the names table, GUIDs, CIDs), or one whose VM part is a
    /// name, for [`Names::resolve`].
    pub fn parse(text: &str) -> Result<EndpointArg, String> {
        let state = match text.parse::<Endpoint>() {
            Ok(ep) => State::Ready(ep, None),
            Err(_) if name_part(text).is_some() => State::Named,
            Err(e) => return Err(e.to_string()),
        };
        Ok(EndpointArg { text: text.into(), state })
    }

    /// The same, where `*` may stand for the parts a client names (relay's TO).
    pub fn parse_target(text: &str) -> Result<EndpointArg, String> {
        match text.contains('*') {
            true => Ok(EndpointArg { text: text.into(), state: State::Wildcard }),
            false => EndpointArg::parse(text),
        }
    }

    /// As the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The endpoint; `None` for a wildcard.
    pub fn resolved(&self) -> Option<&Endpoint> {
        match &self.state {
            State::Ready(ep, _) => Some(ep),
            State::Wildcard => None,
            State::Named => unreachable!("`{}`: args::parse resolves every name", self.text),
        }
    }

    /// The endpoint of an argument that takes no wildcard.
    pub fn endpoint(&self) -> &Endpoint {
        self.resolved().expect("only relay's TO takes a wildcard")
    }

    /// The VM whose name the endpoint was written with.
    pub fn vm(&self) -> Option<&FoundVm> {
        match &self.state {
            State::Ready(_, vm) => vm.as_deref(),
            _ => None,
        }
    }
}

/// The (kind, name, service) of an endpoint whose VM part is a name: only a VM part that
/// means nothing else is one; any other fault is the endpoint parser's to say.
fn name_part(text: &str) -> Option<(String, &str, &str)> {
    let (kind, rest) = text.split_once(':')?;
    let kind = kind.to_ascii_lowercase();
    let (name, service) = rest.rsplit_once(':')?;
    let named = ["vsock", "hv", "vsock-seqpacket"].contains(&kind.as_str())
        && name.parse::<Vm>().is_err()
        && service.parse::<Service>().is_ok();
    named.then_some((kind, name, service))
}

/// Looks names up; the machine's VMs are found at the first name, and only then.
#[derive(Default)]
pub struct Names(OnceCell<Discovery>);

impl Names {
    /// Makes a named argument the endpoint that reaches its VM: the VM's CID or VM ID in place
    /// of the name, or for a hybrid-vsock VM the `hybrid:` endpoint of its socket.
    pub fn resolve(&self, arg: &mut EndpointArg) -> Result<(), String> {
        if let State::Named = arg.state {
            let (ep, vm) = self.named(&arg.text)?;
            arg.state = State::Ready(ep, Some(Box::new(vm)));
        }
        Ok(())
    }

    fn named(&self, text: &str) -> Result<(Endpoint, FoundVm), String> {
        let (kind, name, service) = name_part(text).expect("parsed as a named endpoint");
        let shown = Printable::new(text);
        let vm =
            resolve(name, self.0.get_or_init(discover)).map_err(|e| format!("endpoint `{shown}`: {e}"))?;
        let port = || {
            service.parse::<Service>().ok().and_then(|s| s.to_port().ok()).ok_or_else(|| {
                format!("endpoint `{shown}`: {} is a hybrid-vsock VM, which takes a port", vm.name)
            })
        };
        let rewritten = match &vm.reach {
            Reach::Cid(cid) => format!("{kind}:{cid}:{service}"),
            Reach::VmId(id) => format!("{kind}:{id}:{service}"),
            // Built, not written out and parsed again: the socket's path may be any bytes.
            Reach::Hybrid(path) if kind == "vsock-seqpacket" => {
                return Ok((Endpoint::HybridSeqpacket(path.clone(), port()?), vm))
            }
            Reach::Hybrid(path) => return Ok((Endpoint::Hybrid(path.clone(), port()?), vm)),
            Reach::NoCidYet => {
                return Err(format!(
                    "endpoint `{shown}`: {} has no CID yet: it is given one when it starts",
                    vm.name
                ))
            }
            Reach::NotFromHere => {
                return Err(format!(
                    "endpoint `{shown}`: {} cannot be reached from this machine ({})",
                    vm.name, vm.source
                ))
            }
        };
        let ep = rewritten.parse::<Endpoint>().map_err(|e| e.to_string())?;
        Ok((ep, vm))
    }
}

/// clap's parser for the VM of `client`/`server` (their only VM argument): the names table,
/// or a VM reached by CID or VM ID.
pub fn vm(text: &str) -> Result<Vm, String> {
    let not_a_vm = match text.parse::<Vm>() {
        Ok(vm) => return Ok(vm),
        Err(e) => e,
    };
    let found = resolve(text, &discover()).map_err(|_| not_a_vm.to_string())?;
    match found.reach {
        Reach::Cid(cid) => Ok(Vm::Cid(cid)),
        Reach::VmId(id) => Ok(Vm::from(hvsock::VmId::from(id))),
        Reach::Hybrid(path) => Err(format!(
            "{} is a hybrid-vsock VM (its socket is {}): use `hvsock connect vsock:{}:PORT`",
            found.name,
            path.display(),
            found.name
        )),
        other => Err(format!("{}: {other}", found.name)),
    }
}
