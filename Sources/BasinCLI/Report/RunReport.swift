import BasinNN
import BasinSweep
import Foundation

/// One self-contained HTML page about a run directory, finished or in progress: provenance,
/// the study's table (sortable) and barrier chart, and per job its definition, id, progress and
/// plot (inline SVG; a 2-D result can also be turned in 3-D), linked to the jobs it reads. No
/// network, no external script, style or font: the page is one file to keep or send.
struct RunReport {
    let directory: URL
    let spec: StudySpec
    let study: Study
    let status: RunStatus
    let records: [Journal.Record]

    /// Reads the run; `merge` first writes its results from the journal (as `basin merge`,
    /// which a live run allows), so the page shows every point journaled so far.
    init(directory: URL, merge: Bool = true) throws {
        self.directory = directory
        let run = RunDirectory(directory)
        spec = try SpecFile.runSpec(directory)
        let executor = Executor(spec: spec, base: try Sweep.base(of: directory))
        study = try Study(spec: spec, executor: executor)
        records = try Journal.read(run.journal)
        if merge { try Merger(study: study, executor: executor, run: run).merge(records: records) }
        status = try Sweep.status(directory, records: records)
    }

    var run: RunDirectory { RunDirectory(directory) }

    /// The page. `figures` counts the figures it holds (each marks itself drawn in the page).
    func html() throws -> (page: String, figures: Int) {
        var body = ""
        var figures = 0
        let title = "Basin run — \(directory.lastPathComponent)"
        body += "<header><h1>\(Self.escape(title))</h1>\(try provenance())</header>\n"
        body += navigation()
        body += missing()
        if let summary = try? String(contentsOf: run.summaryFile, encoding: .utf8), spec.stages != nil {
            body += "<section id=\"summary\"><h2>Study table</h2>"
            body += "<p class=\"note\">summary.csv: a row per model and per pair of seeds, and each cell's mean and "
                + "standard deviation. Click a heading to sort.</p>"
            body += Self.table(csv: summary, link: { self.anchor(forSummaryName: $0) })
            for quantity in ["loss", "error"] {
                if let chart = try? BarrierChart(csv: summary, source: run.summaryFile.path, quantity: quantity) {
                    body += Self.figure(
                        chart.svg(title: "\(quantity.capitalized) barriers per cell"),
                        caption: "\(quantity.capitalized) barriers: mean ± std over each cell's pairs (n per cell under its name)")
                    figures += 1
                }
            }
            body += "</section>\n"
        }
        body += "<section id=\"jobs\"><h2>Jobs</h2>\n"
        let done = Dictionary(uniqueKeysWithValues: status.jobs.map { ($0.name, $0) })
        for job in study.jobs {
            let (section, drawn) = try jobSection(job, progress: done[job.name])
            body += section
            figures += drawn
        }
        body += "</section>\n"
        let page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>\(Self.style)</style></head>
            <body data-figures="\(figures)">
            \(body)
            <script>\(Self.script)</script>
            </body></html>

            """
        return (page, figures)
    }

    // MARK: Parts

    private func provenance() throws -> String {
        let meta = Provenance.metadata(spec: spec)
        let workers = Set(records.compactMap { record -> String? in
            if case .shardDone(let done) = record { return done.worker }
            return nil
        })
        var times: [Double] = []
        for record in records {
            switch record {
            case .runStarted(_, let time): times.append(time)
            case .shardDone(let done): times.append(done.time)
            default: break
            }
        }
        let wall = (times.max() ?? 0) - (times.min() ?? 0)
        let epochs = records.filter { if case .runStarted = $0 { return true } else { return false } }.count
        var rows: [(String, String)] = [
            ("Basin", BasinVersion.string),
            ("spec SHA-256", meta["spec_sha256"]?.stringValue ?? ""),
            ("points", "\(status.done) of \(status.total)\(status.done < status.total ? " (in progress or stopped)" : "")"),
            ("jobs", "\(study.jobs.count)"),
            ("workers", workers.isEmpty ? "none yet" : "\(workers.count): \(workers.sorted().prefix(8).joined(separator: ", "))\(workers.count > 8 ? ", …" : "")"),
            ("wall time", epochs == 0 ? "not started" : "\(ProgressDisplay.duration(wall)) over \(epochs) start(s)"),
        ]
        if let verify = spec.sweep.verify {
            rows.append(("verification", "\(Int((verify * 100).rounded()))% of shards recomputed elsewhere; "
                + (status.voided.isEmpty ? "no disagreement" : "\(status.voided.count) result(s) voided and recomputed")))
        }
        if !status.problems.quarantined.isEmpty {
            rows.append(("quarantined", "\(status.problems.quarantined.count) shard(s): their points are missing"))
        }
        if let live = status.live { rows.append(("coordinator", "running (\(live.workers) worker(s) connected)")) }
        return "<dl class=\"provenance\">" + rows.map { "<dt>\(Self.escape($0.0))</dt><dd>\(Self.escape($0.1))</dd>" }.joined()
            + "</dl>"
    }

    private func navigation() -> String {
        var links = spec.stages != nil ? ["<a href=\"#summary\">study table</a>"] : []
        links += study.jobs.map { "<a href=\"#\(anchor($0.name))\">\(Self.escape($0.name))</a>" }
        return "<nav>" + links.joined(separator: " · ") + "</nav>\n"
    }

    private func missing() -> String {
        let incomplete = status.jobs.filter { $0.done < $0.total }
        guard !incomplete.isEmpty else { return "" }
        let items = incomplete.map {
            "<li><a href=\"#\(anchor($0.name))\">\(Self.escape($0.name))</a>: \($0.done) of \($0.total) points</li>"
        }
        var text = "<section id=\"missing\" class=\"missing\"><h2>Not finished</h2><p>This run is in progress or "
            + "stopped: \(status.total - status.done) point(s) are missing, shown as NaN (grey) where a result exists.</p>"
        text += "<ul>" + items.joined() + "</ul>"
        for entry in status.problems.quarantined {
            text += "<p>Quarantined: \(Self.escape(entry.job)) points \(entry.start)..<\(entry.end): "
                + Self.escape(entry.reasons.prefix(2).joined(separator: "; ")) + "</p>"
        }
        return text + "</section>\n"
    }

    private func jobSection(_ job: Study.Job, progress: RunStatus.Job?) throws -> (String, Int) {
        var text = "<section class=\"job\" id=\"\(anchor(job.name))\"><h3>\(Self.escape(job.name))</h3>"
        var facts = [
            "kind \(job.definition.kind.rawValue)", "id <code>\(job.id)</code>",
            "\(progress?.done ?? 0) of \(job.pointCount) point(s)",
        ]
        if !job.dependencies.isEmpty {
            facts.append(
                "reads " + job.dependencies.map {
                    "<a href=\"#\(anchor(study.jobs[$0].name))\">\(Self.escape(study.jobs[$0].name))</a>"
                }.joined(separator: ", "))
        }
        let readers = study.jobs.filter { $0.dependencies.contains { study.jobs[$0].name == job.name } }
        if !readers.isEmpty {
            facts.append(
                "read by " + readers.map { "<a href=\"#\(anchor($0.name))\">\(Self.escape($0.name))</a>" }
                    .joined(separator: ", "))
        }
        text += "<p class=\"facts\">" + facts.joined(separator: " · ") + "</p>"
        let definition = try JSONValue(encoding: job.definition)
        text += "<details><summary>definition</summary><pre>\(Self.escape(Self.pretty(definition)))</pre></details>"
        let file = run.result(job.name)
        guard FileManager.default.fileExists(atPath: file.path) else {
            return (text + "<p class=\"note\">No result yet.</p></section>\n", 0)
        }
        let result = try ResultFile(contentsOf: file)
        var drawn = 0
        if let values = result.metadata["values"], case .object(let items) = values, !items.isEmpty {
            text += "<table class=\"values\"><tr>" + items.keys.sorted().map { "<th>\(Self.escape($0))</th>" }.joined()
                + "</tr><tr>" + items.keys.sorted().map { "<td>\(Self.number(items[$0]?.doubleValue))</td>" }.joined()
                + "</tr></table>"
        }
        if let statistics = result.metadata["statistics"], let barrier = statistics["train_loss_barrier"]?.doubleValue {
            let error = statistics["train_error_barrier"]?.doubleValue
            text += "<p class=\"facts\">train loss barrier \(Self.number(barrier)) · error barrier \(Self.number(error))</p>"
        }
        let metric =
            result["train_loss"] != nil ? "train_loss" : result["epoch_loss"] != nil ? "epoch_loss"
            : result["density"] != nil ? "density" : nil
        if let metric {
            let companions = PlotCommand.companions(of: file.path)
            let plot = ResultPlot(
                result: result, title: PlotCommand.title(result, file: file.path), logScale: false,
                ownLabel: companions.isEmpty ? nil : PlotCommand.pathJobs.first { file.path.contains("/\($0.0)/") }?.1,
                companions: companions)
            if let svg = try? plot.svg(metric: metric) {
                let caption = metric == "epoch_loss" ? "Training curve: mean loss per epoch" : metric == "density"
                    ? "Hessian eigenvalue density" : "\(metric.replacingOccurrences(of: "_", with: " "))"
                text += Self.figure(svg, caption: caption)
                drawn += 1
            }
            if metric == "train_loss", let tensor = result["train_loss"], tensor.shape.count == 2,
                let values = tensor.floats(), let xs = result["x"]?.doubles(), let ys = result["y"]?.doubles()
            {
                text += surface3D(values: values, xs: xs, ys: ys)
                drawn += 1
            }
        }
        return (text + "</section>\n", drawn)
    }

    /// A canvas the page's script draws as a wireframe surface, turned by dragging.
    private func surface3D(values: [Float], xs: [Double], ys: [Double]) -> String {
        func list(_ v: [Double]) -> String {
            "[" + v.map { $0.isFinite ? String(format: "%.6g", $0) : "null" }.joined(separator: ",") + "]"
        }
        let data = "{\"x\":\(list(xs)),\"y\":\(list(ys)),\"z\":\(list(values.map(Double.init)))}"
        return "<figure><canvas class=\"surface3d\" width=\"640\" height=\"420\" data-surface='\(data)'></canvas>"
            + "<figcaption>train loss in 3-D: drag to turn</figcaption></figure>"
    }

    private func anchor(_ name: String) -> String {
        "job-" + name.map { $0.isLetter || $0.isNumber || $0 == "-" ? String($0) : "_" }.joined()
    }

    /// A summary row's name (a model `lr=0.1,seed=0` or a pair `…,seed=0-seed=1`) as the
    /// anchor of the job that made it.
    private func anchor(forSummaryName name: String) -> String? {
        for prefix in ["train/", "line/"] where study.jobs.contains(where: { $0.name == prefix + name }) {
            return anchor(prefix + name)
        }
        return nil
    }

    // MARK: HTML

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        return value.isNaN ? "nan" : String(format: "%.5g", value)
    }

    static func pretty(_ value: JSONValue) -> String {
        let data = value.serialized()
        guard let object = try? JSONSerialization.jsonObject(with: data),
            let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        else { return String(decoding: data, as: UTF8.self) }
        return String(decoding: text, as: UTF8.self)
    }

    /// An SVG inline (its XML declaration dropped) with a caption.
    static func figure(_ svg: String, caption: String) -> String {
        let inline = svg.hasPrefix("<?xml") ? String(svg.drop { $0 != "\n" }.dropFirst()) : svg
        return "<figure class=\"plot\">\(inline)<figcaption>\(escape(caption))</figcaption></figure>"
    }

    /// A CSV (quoted fields allowed) as a sortable table; `link` gives a name column's anchor.
    static func table(csv: String, link: (String) -> String?) -> String {
        let lines = csv.split(separator: "\n").map { BarrierChart.fields(String($0)) }
        guard let header = lines.first else { return "" }
        var html = "<div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
            + header.map { "<th>\(escape($0.replacingOccurrences(of: "_", with: " ")))</th>" }.joined() + "</tr></thead><tbody>"
        for row in lines.dropFirst() {
            html += "<tr>" + row.enumerated().map { index, field in
                if index < header.count, header[index] == "name", let target = link(field) {
                    return "<td><a href=\"#\(target)\">\(escape(field))</a></td>"
                }
                if let value = Double(field) { return "<td data-value=\"\(value.isNaN ? "" : String(value))\">\(number(value))</td>" }
                return "<td>\(escape(field))</td>"
            }.joined() + "</tr>"
        }
        return html + "</tbody></table></div>"
    }

    static let style = """
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222;\
        padding:0 1rem}h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}\
        h3{margin-bottom:.3rem}nav{font-size:.85rem;line-height:1.6}dl.provenance{display:grid;\
        grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}\
        table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem;\
        text-align:right}th{background:#f3f3f3;cursor:pointer;white-space:nowrap}td:first-child,th:first-child{\
        text-align:left}.facts,.note{color:#555;font-size:.9rem}.missing{background:#fff6e0;padding:.5rem 1rem;\
        border:1px solid #f0c36d}figure{margin:1rem 0}figure svg{max-width:100%;height:auto}canvas{border:1px solid \
        #ddd;cursor:grab;max-width:100%}figcaption{font-size:.85rem;color:#555}pre{background:#f7f7f7;padding:.5rem;\
        overflow:auto;font-size:.8rem}section.job{border-top:1px solid #eee;padding-top:.5rem}.scroll{overflow-x:auto}
        """

    /// Sortable tables; 2-D results as turnable wireframes; and the number of figures drawn,
    /// set on the body once every one is (what a test, or a reader, can check).
    static let script = """
        (function(){
        "use strict";
        var drawn=document.querySelectorAll("figure.plot svg").length;
        document.querySelectorAll("table.sortable").forEach(function(table){
          var heads=table.querySelectorAll("th");
          heads.forEach(function(th,column){
            th.addEventListener("click",function(){
              var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
              var ascending=th.dataset.order!=="asc";th.dataset.order=ascending?"asc":"desc";
              rows.sort(function(a,b){
                var x=a.cells[column],y=b.cells[column];if(!x||!y)return 0;
                var u=x.dataset.value,v=y.dataset.value;
                var c=(u!==undefined&&v!==undefined&&u!==""&&v!=="")?(parseFloat(u)-parseFloat(v)):
                  x.textContent.localeCompare(y.textContent);
                return ascending?c:-c;});
              rows.forEach(function(r){body.appendChild(r);});});});});
        function surface(canvas){
          var d=JSON.parse(canvas.dataset.surface),nx=d.x.length,ny=d.y.length,z=d.z;
          var finite=z.filter(function(v){return v!==null&&isFinite(v);});
          var ctx=canvas.getContext("2d");
          if(!finite.length){ctx.fillStyle="#555";ctx.font="14px sans-serif";
            ctx.fillText("no point computed yet",20,30);drawn+=1;return;}
          var lo=Math.min.apply(null,finite),hi=Math.max.apply(null,finite),span=(hi-lo)||1;
          var yaw=0.8,pitch=0.6;
          function point(i,j){
            var v=z[j*nx+i];if(v===null||!isFinite(v))return null;
            var x=nx>1?i/(nx-1)-0.5:0,y=ny>1?j/(ny-1)-0.5:0,h=(v-lo)/span-0.5;
            var cx=x*Math.cos(yaw)-y*Math.sin(yaw),cy=x*Math.sin(yaw)+y*Math.cos(yaw);
            var sy=cy*Math.sin(pitch)-h*Math.cos(pitch);
            return [canvas.width/2+cx*canvas.width*0.7,canvas.height/2+sy*canvas.height*0.7,(v-lo)/span];}
          function colour(t){var r=Math.round(68+187*t),g=Math.round(1+180*(1-Math.abs(t-0.5)*2)),b=Math.round(84+100*(1-t));
            return "rgb("+r+","+g+","+b+")";}
          function draw(){
            ctx.fillStyle="#fff";ctx.fillRect(0,0,canvas.width,canvas.height);ctx.lineWidth=1;
            for(var j=0;j<ny;j++)for(var i=0;i<nx;i++){var p=point(i,j);if(!p)continue;
              [[i+1,j],[i,j+1]].forEach(function(n){if(n[0]>=nx||n[1]>=ny)return;var q=point(n[0],n[1]);if(!q)return;
                ctx.strokeStyle=colour((p[2]+q[2])/2);ctx.beginPath();ctx.moveTo(p[0],p[1]);ctx.lineTo(q[0],q[1]);ctx.stroke();});}
            ctx.fillStyle="#333";ctx.font="12px sans-serif";
            ctx.fillText("train loss "+lo.toPrecision(4)+" … "+hi.toPrecision(4),10,16);}
          var from=null;
          canvas.addEventListener("pointerdown",function(e){from=[e.clientX,e.clientY];canvas.setPointerCapture(e.pointerId);});
          canvas.addEventListener("pointermove",function(e){if(!from)return;yaw+=(e.clientX-from[0])*0.01;
            pitch=Math.max(0.05,Math.min(1.5,pitch+(e.clientY-from[1])*0.01));from=[e.clientX,e.clientY];draw();});
          canvas.addEventListener("pointerup",function(){from=null;});
          draw();drawn+=1;}
        document.querySelectorAll("canvas.surface3d").forEach(surface);
        document.body.dataset.drawn=String(drawn);
        })();
        """
}
