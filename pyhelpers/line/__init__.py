"""The automation lines, end to end: data -> experiment (data_line), experiment -> deployment."""
