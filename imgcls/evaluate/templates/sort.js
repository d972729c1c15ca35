// Click (or Enter on) a column header of a table.sortable to sort its rows; again to reverse.
// Cells sort by their data-value attribute when they have one (mean ± std cells carry the
// mean), else by their text: numbers by value, text in natural order, empty cells last.
(function () {
  "use strict";
  function key(cell) {
    if (!cell) return { empty: true };
    var value = cell.getAttribute("data-value");
    if (value !== null && value !== "") return { number: parseFloat(value) };
    var text = cell.textContent.trim();
    if (text === "") return { empty: true };
    var match = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.exec(text);
    return match ? { number: parseFloat(text) } : { text: text };
  }
  function compare(a, b) {
    if (a.number !== undefined && b.number !== undefined) return a.number - b.number;
    if (a.number !== undefined) return -1;
    if (b.number !== undefined) return 1;
    return a.text.localeCompare(b.text, undefined, { numeric: true });
  }
  function sort(table, column, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.sort(function (first, second) {
      var a = key(first.cells[column]);
      var b = key(second.cells[column]);
      if (a.empty || b.empty) return (a.empty ? 1 : 0) - (b.empty ? 1 : 0);
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.tabIndex = 0;
      header.title = "sort by this column";
      header.addEventListener("click", function () { sort(table, column, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort(table, column, header);
        }
      });
    });
  });
})();
