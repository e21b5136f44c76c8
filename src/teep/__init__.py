"""teep: the TEEP system (RFC 9397) in Python.

A TAM, a TEEP Broker and Agent with a simulated TEE, a Verifier, and the tools
to make keys and SUIT manifests and to read TEEP messages.
"""

__version__ = "0.1.0"
