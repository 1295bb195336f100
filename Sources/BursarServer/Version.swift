/// bursar's version, reported by `bursard --version` and in `bursar_build_info`.
public let bursarVersion = "0.3.0"
