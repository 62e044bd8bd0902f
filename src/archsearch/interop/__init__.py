"""Bridges to other code: the SGNAS authors' released files (sgnas_release.py) and timm (timm_mobile.py)."""
