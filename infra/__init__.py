"""Deployment: the nginx front, rendered from settings (infra.nginx), and the Azure deployment in terraform/,
which is not Python.

A package so the nginx template ships with the installed project: `streamify up --nodes N`, compose and the
Azure edge render the same config from a wheel as from a checkout.
"""
