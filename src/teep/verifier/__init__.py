"""The Verifier as a service, and clients for remote Verifiers.

- :mod:`.service`: sans-I/O challenge-response sessions and appraisals that
  end in signed EARs;
- :mod:`.http`: the aiohttp adapter (the Veraison API's shape, plus a direct
  appraisal endpoint for background checks);
- :mod:`.client`: :class:`~teep.verifier.client.VerifierClient`, a remote
  Verifier behind the same ``appraise`` call as the built-in one;
- :mod:`.home`: a Verifier's folder (key, endorsements, reference values);
- :mod:`.errors`: why a request was refused.
"""
