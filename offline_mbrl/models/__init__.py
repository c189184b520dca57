"""Models of the environment behind one interface: the learned probabilistic ensemble (`dynamics`), the
termination rules, and the true simulator (`oracle`). Models know data and core, never algorithms."""
