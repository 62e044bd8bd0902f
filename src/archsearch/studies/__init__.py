"""Studies that train many architectures: rank correlation across objectives."""
