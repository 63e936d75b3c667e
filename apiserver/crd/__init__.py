"""CustomResourceDefinitions: serving the kinds users add (api/crd.py holds the rules).

- `registry.CustomRegistry`: a custom resource's verbs, pruning, defaulting and
  validating against its version's schema, storing in the storage version;
- `controller.CRDController`: follows the definitions in etcd, accepts their
  names, marks them Established, keeps the resource table in step, and deletes
  a definition's objects before the definition itself goes;
- `tables` and `scale`: `kubectl get` columns and the scale subresource.
"""
