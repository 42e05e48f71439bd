"""Reports: the order dossier and the vehicle file (一车一档) as data, HTML and PDF, and the
statistics, each read recorded in the audit log."""
