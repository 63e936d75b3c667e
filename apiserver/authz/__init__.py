"""Authorization: who may do what, decided on every request.

As in kube-apiserver, authorizers are asked in order and the first one with
an opinion wins: members of `system:masters` are always allowed, the Node
authorizer answers for kubelets (`system:node:<name>`), and RBAC answers for
everyone else. A request nobody allows is refused with 403.
"""
